"""Generate the synthetic colour-fundus dataset (images, Chinese reports, segmentation layouts).

A progress bar is drawn on stderr when it is a terminal (``--progress`` / ``--no-progress``).

Example:
    python tools/data/make_synthetic_fundus.py data/synthetic_fundus --num-train 800 --seed 0
"""
import argparse

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
    parser.add_argument('--progress', action=argparse.BooleanOptionalAction,
                        help='draw a progress bar on stderr (default: when it is a terminal)')
    return parser.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.size < 32:
        raise SystemExit(f'--size must be at least 32, got {args.size}')
    meta = generate_synthetic_fundus(args.out_dir, args.num_train, args.num_val, args.num_test,
                                     size=args.size, seed=args.seed, num_workers=args.workers,
                                     progress=args.progress)
    total = sum(meta['counts'].values())
    print(f'wrote {total} images ({meta["counts"]}) of {args.size} px to {args.out_dir} in '
          f'{meta["seconds"]:.1f} s ({total / max(meta["seconds"], 1e-9):.1f} images/s)')


if __name__ == '__main__':
    main()
