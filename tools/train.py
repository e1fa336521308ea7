"""Train a vilref_mm model (pre-training, transfer or segmentation) from a config."""
import argparse
import os
import os.path as osp
import sys

from mmengine.config import Config, DictAction

from vilref_mm.engine import build_runner, disable_validation, enable_amp
from vilref_mm.utils.checkpoint import CheckpointError, trusted_checkpoints


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Train a vilref_mm model')
    parser.add_argument('config', help='config file path')
    parser.add_argument('--work-dir', help='directory for logs and checkpoints '
                        '(default: ./work_dirs/<config name>)')
    parser.add_argument(
        '--resume', nargs='?', type=str, const='auto',
        help='resume from PATH, or from the latest checkpoint of the work dir when '
        'given without a path')
    parser.add_argument(
        '--trust-checkpoint', action='store_true',
        help='unpickle the checkpoint of --resume / load_from in full if it needs Python '
        'objects besides tensors (only for files whose origin you know; docs/security.md)')
    parser.add_argument('--amp', action='store_true',
                        help='bf16 autocast, without loss scaling (AutocastOptimWrapper)')
    parser.add_argument('--no-validate', action='store_true',
                        help='skip validation during training')
    parser.add_argument('--auto-scale-lr', action='store_true',
                        help='scale the learning rate with the total batch size')
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction,
        help='override config entries, e.g. train_dataloader.batch_size=16')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'],
                        default='none', help='job launcher')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args()
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    return args


def merge_args(cfg: Config, args: argparse.Namespace) -> Config:
    """Fold the command-line options into the config."""
    cfg.launcher = args.launcher
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = osp.join('./work_dirs', osp.splitext(osp.basename(args.config))[0])

    if args.amp:
        enable_amp(cfg)

    if args.resume == 'auto':
        cfg.resume = True
        cfg.load_from = None
    elif args.resume is not None:
        cfg.resume = True
        cfg.load_from = args.resume

    if args.no_validate:
        disable_validation(cfg)

    if args.auto_scale_lr:
        cfg.setdefault('auto_scale_lr', {})['enable'] = True

    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    return cfg


def main() -> int:
    args = parse_args()
    cfg = merge_args(Config.fromfile(args.config), args)
    # --resume without a path resumes from a file of the work dir.
    trusted = [cfg.load_from or cfg.work_dir] if args.trust_checkpoint else []
    try:
        with trusted_checkpoints(*trusted):
            runner = build_runner(cfg)
            runner.train()
    except (CheckpointError, FileNotFoundError) as error:
        print(f'error: {error}', file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
