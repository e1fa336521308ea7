"""Images/s of a config's dataloader, in the main process and with worker processes.

Builds the config's ``{split}_dataloader`` (its dataset, manifest or LMDB, and pipeline) and
times how fast it yields samples: with 0 workers (the main process: the decode and transform
speed of one process), then with each ``--num-workers`` (total and per worker). The dataset is
built once; the sampler becomes an ``InfiniteSampler`` (same ``shuffle``) so that a run longer
than the dataset never restarts the workers. Each run first loads ``--warmup`` batches per
loading process (worker start-up, first reads), then times ``--max-samples`` samples (whole
batches). The table goes to the console, and with ``--out`` to a JSON file.

    python tools/analysis/benchmark_dataloader.py CONFIG [--split train] [--num-workers 1 2]
        [--max-samples 256] [--warmup 1] [--cfg-options KEY=VALUE ...] [--out JSON]
"""
import argparse
import copy
import json
import time
from typing import Any, List

from mmengine.config import Config, ConfigDict, DictAction
from mmengine.registry import DATASETS, init_default_scope
from mmengine.runner import Runner
from mmengine.utils.dl_utils import set_multi_processing

from vilref_mm.utils.fileio import write_text_atomic


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config', help='config file')
    parser.add_argument('--split', default='train', choices=['train', 'val', 'test'],
                        help='the dataloader to time (default: %(default)s)')
    parser.add_argument('--num-workers', type=int, nargs='+',
                        help="worker counts to time after the main process (default: the "
                        "config's num_workers)")
    parser.add_argument('--max-samples', type=int, default=256,
                        help='samples timed per run (default: %(default)s)')
    parser.add_argument('--warmup', type=int, default=1,
                        help='batches per loading process loaded before the clock starts '
                        '(default: %(default)s)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override settings of the config, KEY=VALUE')
    parser.add_argument('--out', help='write the results to this JSON file')
    args = parser.parse_args(argv)
    if args.max_samples < 1 or args.warmup < 0 or any(n < 0 for n in args.num_workers or []):
        parser.error('--max-samples must be positive, --warmup and --num-workers not negative')
    return args


def batch_size_of(batch: Any, default: int) -> int:
    """The number of samples of a collated batch: its ``data_samples`` list, else
    ``default``."""
    if isinstance(batch, dict) and isinstance(batch.get('data_samples'), (list, tuple)):
        return len(batch['data_samples'])
    return default


def time_loader(loader_cfg: ConfigDict, num_workers: int, max_samples: int, warmup: int,
                seed: Any) -> dict:
    """Build the dataloader with ``num_workers`` and time ``max_samples`` samples."""
    loader_cfg = copy.copy(loader_cfg)
    loader_cfg.update(num_workers=num_workers, persistent_workers=False)
    loader = Runner.build_dataloader(loader_cfg, seed=seed)
    batches = iter(loader)
    for _ in range(warmup * max(num_workers, 1)):
        next(batches)
    samples = 0
    start = time.perf_counter()
    while samples < max_samples:
        samples += batch_size_of(next(batches), loader.batch_size)
    seconds = time.perf_counter() - start
    del batches  # stops the workers
    images_per_s = samples / seconds
    return dict(num_workers=num_workers, samples=samples, seconds=round(seconds, 4),
                images_per_s=round(images_per_s, 2),
                images_per_s_per_worker=round(images_per_s / max(num_workers, 1), 2))


def main(argv=None) -> None:
    args = parse_args(argv)
    cfg = Config.fromfile(args.config)
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    init_default_scope(cfg.get('default_scope', 'mmpretrain'))
    set_multi_processing(**cfg.get('env_cfg', {}).get('mp_cfg', {}))

    loader_cfg = copy.deepcopy(cfg[f'{args.split}_dataloader'])
    dataset = DATASETS.build(loader_cfg.dataset)
    dataset.full_init()
    loader_cfg.dataset = dataset
    loader_cfg.sampler = dict(type='InfiniteSampler',
                              shuffle=loader_cfg.get('sampler', {}).get('shuffle', True))
    worker_counts: List[int] = [0] + [n for n in dict.fromkeys(
        args.num_workers or [loader_cfg.get('num_workers', 0)]) if n > 0]
    seed = cfg.get('randomness', {}).get('seed')
    print(f'{args.config}: {args.split} dataloader, {type(dataset).__name__} of '
          f'{len(dataset):,} samples, batch size {loader_cfg.batch_size}')
    print(f'{"workers":>8}{"images/s":>12}{"per worker":>12}{"samples":>9}{"seconds":>9}')
    results = []
    for num_workers in worker_counts:
        result = time_loader(loader_cfg, num_workers, args.max_samples, args.warmup, seed)
        results.append(result)
        print(f'{"0 (main)" if num_workers == 0 else num_workers:>8}'
              f'{result["images_per_s"]:>12.1f}{result["images_per_s_per_worker"]:>12.1f}'
              f'{result["samples"]:>9}{result["seconds"]:>9.2f}')
    if args.out:
        summary = dict(config=args.config, split=args.split, dataset=type(dataset).__name__,
                       dataset_size=len(dataset), batch_size=loader_cfg.batch_size,
                       max_samples=args.max_samples, warmup_batches=args.warmup,
                       results=results)
        write_text_atomic(args.out, [json.dumps(summary, indent=2) + '\n'])
        print(f'wrote {args.out}')


if __name__ == '__main__':
    main()
