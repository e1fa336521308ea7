"""Evaluate a vilref_mm checkpoint with the test split of a config."""
import argparse
import os
import os.path as osp
import sys

from mmengine.config import Config, DictAction
from mmengine.fileio import dump

from vilref_mm.engine import build_runner
from vilref_mm.utils import atomic_open
from vilref_mm.utils.checkpoint import CheckpointError, trusted_checkpoints


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Test a vilref_mm model')
    parser.add_argument('config', help='config file path')
    parser.add_argument('checkpoint', help='checkpoint file: every weight of the model must '
                        'be in it')
    parser.add_argument(
        '--trust-checkpoint', action='store_true',
        help='unpickle the checkpoint in full if it needs Python objects besides tensors '
        '(only for files whose origin you know; docs/security.md)')
    parser.add_argument('--work-dir', help='directory for the evaluation logs')
    parser.add_argument('--out', help='dump the metrics (.json/.yaml/.pkl) to this file')
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction,
        help='override config entries, e.g. test_dataloader.batch_size=16')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'],
                        default='none', help='job launcher')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args()
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    return args


def main() -> int:
    args = parse_args()
    cfg = Config.fromfile(args.config)
    cfg.launcher = args.launcher
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = osp.join('./work_dirs', osp.splitext(osp.basename(args.config))[0])
    cfg.load_from = args.checkpoint

    trusted = [args.checkpoint] if args.trust_checkpoint else []
    try:
        with trusted_checkpoints(*trusted):
            runner = build_runner(cfg)
            metrics = runner.test()
    except (CheckpointError, FileNotFoundError) as error:
        print(f'error: {error}', file=sys.stderr)
        return 1
    if args.out is not None:
        content = dump(metrics, file_format=osp.splitext(args.out)[1][1:])
        with atomic_open(args.out) as file:
            file.write(content.encode('utf-8') if isinstance(content, str) else content)
        runner.logger.info(f'metrics written to {args.out}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
