"""The demo (`make demo`): ViLReF end to end on the built-in synthetic fundus dataset on CPU.

Generates the data, measures the report labeler, pre-trains a small ViLReF with WSCL and the
memory queue, evaluates it zero-shot (and at initialisation), fine-tunes its image encoder for
vessel and optic disc/cup segmentation, and writes plots and WORK_DIR/summary.json
(docs/demo.md). The stages are in tools/demo_stages.py, next to this script.

Example:
    python tools/demo.py                       # the full demo in work_dirs/demo
    python tools/demo.py --seg-tasks vessels odoc   # also optic disc/cup (about 10 minutes)
    python tools/demo.py --skip-data --max-iters 300 --no-segmentation
"""
import argparse
import glob
import os
import time
from pathlib import Path
from typing import Sequence

START = time.perf_counter()  # the demo's time includes the imports of torch and the stack
# Idle OpenMP threads sleep instead of spinning (set before torch starts OpenMP): on cores
# shared with other jobs, spinning threads made an iteration 4x slower (13 s instead of 3.3 s).
os.environ.setdefault('OMP_WAIT_POLICY', 'PASSIVE')

import torch  # noqa: E402

# tools/demo_stages.py: Python puts the script's folder first on sys.path
from demo_stages import (DemoOptions, SyntheticDataSpec, format_summary,  # noqa: E402
                         run_demo)

REPO = Path(__file__).resolve().parents[1]
PRETRAIN_CONFIG = REPO / 'configs/vilref/vilref_vit-tiny-p16_1xb32-450it_synthetic-112px.py'
#: Segmentation task (a sub-folder of the synthetic data) -> glob of its demo config.
SEGMENTATION_CONFIGS = {
    'vessels': 'configs/segmentation/*_synthetic-vessels-*.py',
    'odoc': 'configs/segmentation/*_synthetic-odoc-*.py',
}


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--work-dir', default='work_dirs/demo',
                        help='output folder (default: work_dirs/demo)')
    parser.add_argument('--config', default=os.path.relpath(PRETRAIN_CONFIG),
                        help='pre-training config (default: the demo config of '
                        'configs/vilref)')
    parser.add_argument('--skip-data', action='store_true',
                        help='keep the generated data when its meta.json matches the options')
    parser.add_argument('--num-train', type=int, default=2000,
                        help='pre-training images (default: 2000)')
    parser.add_argument('--num-val', type=int, default=200,
                        help='validation images (default: 200)')
    parser.add_argument('--num-test', type=int, default=400,
                        help='zero-shot test images (default: 400)')
    parser.add_argument('--size', type=int, default=112,
                        help='pre-training image side in px (default: 112)')
    parser.add_argument('--seed', type=int, default=0,
                        help='seed of the synthetic data (default: 0)')
    parser.add_argument('--max-iters', type=int,
                        help='pre-training iterations (default: the config\'s); the schedule '
                        'is scaled to them')
    parser.add_argument('--no-segmentation', action='store_true',
                        help='skip the segmentation fine-tuning')
    parser.add_argument('--seg-tasks', nargs='+', choices=sorted(SEGMENTATION_CONFIGS),
                        default=['vessels'],
                        help='segmentation tasks (default: vessels; with two, they train side '
                        'by side, one process each)')
    parser.add_argument('--seg-iters', type=int,
                        help='segmentation iterations per task (default: the configs\')')
    parser.add_argument('--seg-num-train', type=int, default=200,
                        help='segmentation training images (default: 200)')
    parser.add_argument('--seg-num-val', type=int, default=30,
                        help='segmentation validation images (default: 30)')
    parser.add_argument('--seg-size', type=int, default=256,
                        help='segmentation image side in px (default: 256)')
    parser.add_argument('--threads', type=int,
                        help="torch threads (default: torch's, one per CPU core)")
    return parser.parse_args(argv)


def segmentation_configs(tasks: Sequence[str]) -> dict:
    """Task -> the single config matching its pattern."""
    configs = {}
    for task in tasks:
        pattern = SEGMENTATION_CONFIGS[task]
        matches = sorted(glob.glob(str(REPO / pattern)))
        if len(matches) != 1:
            raise SystemExit(f'{len(matches)} segmentation configs match {pattern}: {matches}; '
                             'keep one per task')
        configs[task] = os.path.relpath(matches[0])
    return configs


def main(argv=None) -> None:
    args = parse_args(argv)
    cores = os.cpu_count() or 1
    if args.threads:
        torch.set_num_threads(args.threads)
    options = DemoOptions(
        config=args.config,
        work_dir=args.work_dir,
        data=SyntheticDataSpec(args.num_train, args.num_val, args.num_test, args.size,
                               args.seed),
        segmentation_configs={} if args.no_segmentation else segmentation_configs(
            args.seg_tasks),
        segmentation_data=SyntheticDataSpec(args.seg_num_train, args.seg_num_val, 0,
                                            args.seg_size, args.seed),
        reuse_data=args.skip_data,
        max_iters=args.max_iters,
        segmentation_iters=args.seg_iters)
    print(f'ViLReF demo in {args.work_dir} ({cores} CPU cores, {torch.get_num_threads()} '
          f'torch threads)', flush=True)
    summary = run_demo(options, start=START)
    print(format_summary(summary), flush=True)


if __name__ == '__main__':
    main()
