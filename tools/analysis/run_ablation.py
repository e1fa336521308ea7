"""The loss ablation: each config pre-trained on the demo's synthetic data for several seeds,
scored by zero-shot macro AUROC on the synthetic test split.

For every config (default: all of ``configs/vilref/ablation``, which differ from the demo's
pre-training config only in ``model.loss``) and every seed, pre-trains as the demo does
(``pretrain`` of ``tools/demo_stages.py``, the seed in ``randomness.seed``) and evaluates the
last checkpoint zero-shot against the generator's findings (``evaluate_zero_shot``). Each run
writes ``WORK_DIR/<config>/seed<k>/result.json``; a run whose result exists is not repeated,
so an interrupted ablation continues where it stopped. The table (per seed, mean, sample
standard deviation, range) goes to the console, ``WORK_DIR/ablation.md`` and
``WORK_DIR/ablation.json``.
The data (``--num-train`` ... ``--data-seed``, the demo's by default) is generated once in
``WORK_DIR/data`` and reused while it matches.

    python tools/analysis/run_ablation.py [CONFIG ...] [--seeds 0 1 2]
        [--work-dir work_dirs/ablation] [--max-iters N] [--cfg-options KEY=VALUE ...]

Each run costs what the demo's pre-training costs (450 iterations; docs/demo.md gives the
last measured time) plus a zero-shot evaluation of the test split, and the default ablation
is 3 seeds x 7 configs = 21 runs: run it on a quiet machine.
"""
import argparse
import json
import os
import os.path as osp
import statistics
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence

# Idle OpenMP threads sleep instead of spinning (before torch starts OpenMP), as in
# tools/demo.py: spinning threads slow iterations down on shared cores.
os.environ.setdefault('OMP_WAIT_POLICY', 'PASSIVE')

from mmengine.config import Config, DictAction  # noqa: E402

from vilref_mm.utils import write_text_atomic  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / 'tools'))  # the demo's stages: tools/demo_stages.py
from demo_stages import (SyntheticDataSpec, evaluate_zero_shot,  # noqa: E402
                         prepare_synthetic_data, pretrain)

ABLATION_DIR = REPO / 'configs' / 'vilref' / 'ablation'


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('configs', nargs='*',
                        help='pre-training configs (default: all of configs/vilref/ablation)')
    parser.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2],
                        help='training seeds (default: 0 1 2)')
    parser.add_argument('--work-dir', default='work_dirs/ablation',
                        help='output folder (default: %(default)s)')
    parser.add_argument('--max-iters', type=int,
                        help="pre-training iterations (default: the configs'); the schedule is "
                        'scaled to them')
    parser.add_argument('--num-train', type=int, default=2000,
                        help='synthetic training images (default: %(default)s)')
    parser.add_argument('--num-val', type=int, default=200,
                        help='synthetic validation images (default: %(default)s)')
    parser.add_argument('--num-test', type=int, default=400,
                        help='synthetic zero-shot test images (default: %(default)s)')
    parser.add_argument('--size', type=int, default=112,
                        help='synthetic image side in px (default: %(default)s)')
    parser.add_argument('--data-seed', type=int, default=0,
                        help='seed of the synthetic data (default: %(default)s)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override settings of every config, KEY=VALUE')
    args = parser.parse_args(argv)
    if len(set(args.seeds)) != len(args.seeds):
        parser.error(f'--seeds repeats a seed: {args.seeds}')
    return args


def ablation_configs(configs: Sequence[str]) -> List[str]:
    """The given configs, or every config of ``configs/vilref/ablation`` (sorted)."""
    if configs:
        return list(configs)
    return sorted(str(path) for path in ABLATION_DIR.glob('*.py'))


def run_name(config: str) -> str:
    """A config's name in the work folder and the table: the algorithm part of its file name
    (``wscl-soft-jaccard`` for ``wscl-soft-jaccard_vit-tiny-p16_1xb32-450it_synthetic-112px``)."""
    return Path(config).stem.split('_')[0]


def describe_loss(cfg: Config) -> str:
    """``Type(option=value, ...)`` of the config's ``model.loss``."""
    loss = dict(cfg.model.loss)
    options = ', '.join(f'{key}={value!r}' for key, value in sorted(loss.items())
                        if key != 'type')
    return f'{loss["type"]}({options})'


def run_one(config: str, seed: int, work_dir: str, data_root: str,
            max_iters: Optional[int] = None, cfg_options: Optional[dict] = None) -> dict:
    """Pre-train ``config`` with ``seed`` and score it zero-shot, unless its result exists.

    Returns:
        dict: ``config``, ``loss``, ``seed``, ``settings`` (``max_iters``, ``cfg_options``,
        ``data_root``), ``macro_auroc``, ``per_class``, ``iters``, ``seconds``, ``checkpoint``
        and ``scalars`` (the training log), as written to ``work_dir/result.json``.

    Raises:
        ValueError: If ``work_dir`` holds the result of a run with other settings.
    """
    settings = dict(max_iters=max_iters, cfg_options=cfg_options or {}, data_root=data_root)
    result_file = Path(work_dir) / 'result.json'
    if result_file.is_file():
        result = json.loads(result_file.read_text(encoding='utf-8'))
        if (result.get('config'), result.get('seed'), result.get('settings')) != (
                config, seed, settings):
            raise ValueError(
                f'{result_file} holds a run of {result.get("config")} (seed '
                f'{result.get("seed")}, {result.get("settings")}), not of {config} (seed '
                f'{seed}, {settings}); choose another --work-dir')
        return result
    start = time.perf_counter()
    cfg = Config.fromfile(config)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    cfg.randomness = dict(cfg.get('randomness') or {}, seed=seed)
    run = pretrain(cfg, work_dir, data_root, max_iters)
    scores = evaluate_zero_shot(run['config'], run['checkpoint'], osp.join(work_dir,
                                                                           'zero_shot'))
    result = dict(config=config, loss=describe_loss(cfg), seed=seed, settings=settings,
                  macro_auroc=scores['macro_auroc'], per_class=scores['per_class'],
                  iters=run['iters'], seconds=round(time.perf_counter() - start, 1),
                  checkpoint=run['checkpoint'], scalars=run['scalars'])
    write_text_atomic(result_file, [json.dumps(result, indent=2) + '\n'])
    return result


def summarise(results: Dict[str, List[dict]]) -> List[dict]:
    """Per config: ``name``, ``loss``, ``seeds``, ``auroc`` (per seed), ``mean``, ``std``
    (sample standard deviation; None for one seed), ``min`` and ``max``."""
    rows = []
    for name, runs in results.items():
        aurocs = [run['macro_auroc'] for run in runs]
        rows.append(dict(name=name, loss=runs[0]['loss'], seeds=[run['seed'] for run in runs],
                         auroc=aurocs, mean=statistics.mean(aurocs),
                         std=statistics.stdev(aurocs) if len(aurocs) > 1 else None,
                         min=min(aurocs), max=max(aurocs)))
    return rows


def format_table(rows: List[dict]) -> str:
    """The rows as a Markdown table of macro AUROC."""
    seeds = rows[0]['seeds']
    header = (['config', 'loss'] + [f'seed {seed}' for seed in seeds]
              + ['mean', 'std', 'range'])
    lines = ['| ' + ' | '.join(header) + ' |', '|' + '---|' * len(header)]
    for row in rows:
        std = 'n/a' if row['std'] is None else f'{row["std"]:.4f}'
        cells = ([row['name'], f'`{row["loss"]}`'] + [f'{value:.4f}' for value in row['auroc']]
                 + [f'{row["mean"]:.4f}', std, f'{row["min"]:.4f}-{row["max"]:.4f}'])
        lines.append('| ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines)


def run_ablation(configs: Sequence[str], seeds: Sequence[int], work_dir: str,
                 data: SyntheticDataSpec, max_iters: Optional[int] = None,
                 cfg_options: Optional[dict] = None) -> dict:
    """Run every config for every seed (runs with a result are kept) and write the table.

    Returns:
        dict: ``rows`` (see :func:`summarise`), ``table`` (Markdown), ``runs`` (every
        run's result by config name), ``data`` and ``max_iters``.
    """
    names = [run_name(config) for config in configs]
    if len(set(names)) != len(names):
        raise ValueError(f'run_ablation: two configs share an algorithm name: {names}')
    data_root = osp.join(work_dir, 'data')
    prepare_synthetic_data(data_root, data, reuse=True)
    results = {}
    for config, name in zip(configs, names):
        results[name] = []
        for seed in seeds:
            print(f'[ablation] {name}, seed {seed}', flush=True)
            run = run_one(config, seed, osp.join(work_dir, name, f'seed{seed}'), data_root,
                          max_iters, cfg_options)
            print(f'[ablation] {name}, seed {seed}: macro AUROC {run["macro_auroc"]:.4f}',
                  flush=True)
            results[name].append(run)
    rows = summarise(results)
    summary = dict(rows=rows, table=format_table(rows), runs=results,
                   data=dict(root=data_root, num_train=data.num_train, num_val=data.num_val,
                             num_test=data.num_test, size=data.size, seed=data.seed),
                   max_iters=max_iters)
    write_text_atomic(osp.join(work_dir, 'ablation.json'),
                      [json.dumps(summary, indent=2) + '\n'])
    write_text_atomic(osp.join(work_dir, 'ablation.md'), [
        'Zero-shot macro AUROC on the synthetic test split (generator findings), '
        f'{data.num_test} images; std: sample standard deviation over the seeds.\n\n',
        summary['table'] + '\n'])
    return summary


def main(argv=None) -> None:
    args = parse_args(argv)
    data = SyntheticDataSpec(args.num_train, args.num_val, args.num_test, args.size,
                             args.data_seed)
    summary = run_ablation(ablation_configs(args.configs), args.seeds, args.work_dir, data,
                           args.max_iters, args.cfg_options)
    print('\n' + summary['table'])
    print(f'\nwritten: {osp.join(args.work_dir, "ablation.md")}, '
          f'{osp.join(args.work_dir, "ablation.json")}')


if __name__ == '__main__':
    main()
