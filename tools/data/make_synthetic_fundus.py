"""Generate the synthetic colour-fundus dataset (images, Chinese reports, segmentation layouts).

Example:
    python tools/data/make_synthetic_fundus.py data/synthetic_fundus --num-train 800 --seed 0
"""
import argparse
import sys
import time

from vilref_mm.datasets.synthetic import generate_synthetic_fundus


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('out_dir', help='output folder')
    parser.add_argument('--num-train', type=int, default=800, help='training images')
    parser.add_argument('--num-val', type=int, default=200, help='validation images')
    parser.add_argument('--num-test', type=int, default=200, help='test images')
    parser.add_argument('--size', type=int, default=256, help='image side in pixels (>= 32)')
    parser.add_argument('--seed', type=int, default=0, help='same seed, same bytes')
    parser.add_argument('--workers', type=int, default=1,
                        help='worker processes (the output does not depend on it)')
    return parser.parse_args(argv)


class ProgressLine:
    """Rewrites one status line: split, images done, images per second."""

    def __init__(self, stream=sys.stderr):
        self.stream, self.start, self.images = stream, time.perf_counter(), 0

    def __call__(self, split: str, done: int, total: int) -> None:
        self.images += 1
        if done == total or done % 25 == 0:
            rate = self.images / max(time.perf_counter() - self.start, 1e-9)
            end = '\n' if done == total else ''
            print(f'\r[{split}] {done}/{total} images, {rate:.1f} images/s', end=end,
                  file=self.stream, flush=True)


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.size < 32:
        raise SystemExit(f'--size must be at least 32, got {args.size}')
    meta = generate_synthetic_fundus(args.out_dir, args.num_train, args.num_val, args.num_test,
                                     size=args.size, seed=args.seed, num_workers=args.workers,
                                     progress=ProgressLine())
    total = sum(meta['counts'].values())
    print(f'wrote {total} images ({meta["counts"]}) of {args.size} px to {args.out_dir} in '
          f'{meta["seconds"]:.1f} s ({total / max(meta["seconds"], 1e-9):.1f} images/s)')


if __name__ == '__main__':
    main()
