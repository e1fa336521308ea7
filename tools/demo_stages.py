"""The stages of the CPU demo (``make demo``): the whole method on the synthetic fundus set.

:func:`run_demo` generates the data, measures the report labeler against the generator's
ground truth, pre-trains a small ViLReF with WSCL and the memory queue, evaluates it zero-shot
on the held-out test split (and the same model at initialisation), fine-tunes the pre-trained
image encoder for vessel and optic disc/cup segmentation, draws the plots and writes
``summary.json``. ``tools/demo.py`` is its command line (next to this module, which it
imports); ``tools/analysis/run_ablation.py`` pre-trains and evaluates with
:func:`prepare_synthetic_data`, :func:`pretrain` and :func:`evaluate_zero_shot`;
``docs/demo.md`` describes the outputs.
"""
import copy
import io
import json
import math
import os
import os.path as osp
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from mmengine.config import Config
from mmengine.fileio import load
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmengine.runner.checkpoint import get_state_dict, weights_to_cpu

from vilref_mm.datasets.label_cache import report_labels
from vilref_mm.datasets.records import parse_manifest_line
from vilref_mm.datasets.synthetic import GENERATOR_VERSION, SPLITS, generate_synthetic_fundus
from vilref_mm.engine import build_runner, disable_validation, scale_schedule
from vilref_mm.engine.runner import drop_console_messages
from vilref_mm.labeling import load_lexicon
from vilref_mm.utils import atomic_open, write_text_atomic
from vilref_mm.utils.checkpoint import save_tensor_checkpoint

#: What the demo must reach (issues 6 and 8): name -> (summary path, comparison, threshold).
DEMO_TARGETS = {
    'zero-shot macro AUROC': ('zero_shot.macro_auroc', '>=', 0.80),
    'gain over initialisation': ('zero_shot.gain', '>=', 0.15),
    'vessel Dice': ('segmentation.vessel_dice', '>=', 0.70),
    'elapsed seconds': ('elapsed_s', '<=', 600.0),
}


@dataclass
class SyntheticDataSpec:
    """One synthetic dataset of the demo: counts per split, image side and seed."""

    num_train: int
    num_val: int
    num_test: int
    size: int
    seed: int = 0

    @property
    def counts(self) -> Dict[str, int]:
        return {'train': self.num_train, 'val': self.num_val, 'test': self.num_test}


@dataclass
class DemoOptions:
    """Everything :func:`run_demo` needs.

    Attributes:
        config: The pre-training config (``configs/vilref/*synthetic*``).
        work_dir: Output folder (data, runs, plots, ``summary.json``).
        data: The pre-training and zero-shot dataset.
        segmentation_configs: Task ('vessels', 'odoc') -> config of ``configs/segmentation``;
            empty to skip segmentation.
        segmentation_data: The segmentation dataset (train and val splits).
        reuse_data: Keep existing data whose ``meta.json`` matches instead of regenerating.
        max_iters: Pre-training iterations (None: the config's).
        segmentation_iters: Fine-tuning iterations (None: the configs').
        data_workers: Processes that draw the synthetic images.
    """

    config: str
    work_dir: str = 'work_dirs/demo'
    data: SyntheticDataSpec = field(
        default_factory=lambda: SyntheticDataSpec(2000, 200, 400, 112))
    segmentation_configs: Dict[str, str] = field(default_factory=dict)
    segmentation_data: SyntheticDataSpec = field(
        default_factory=lambda: SyntheticDataSpec(200, 30, 0, 256))
    reuse_data: bool = False
    max_iters: Optional[int] = None
    segmentation_iters: Optional[int] = None
    data_workers: int = 1


class StageLog:
    """Prints numbered stage headers with the time since the start of the demo."""

    def __init__(self, num_stages: int, start: Optional[float] = None,
                 write: Callable[[str], None] = lambda line: print(line, flush=True)):
        self.num_stages, self.index, self.write = num_stages, 0, write
        self.start = time.perf_counter() if start is None else start
        self.seconds: Dict[str, float] = {}
        self._current: Optional[Tuple[str, float]] = None

    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def __call__(self, key: str, title: str) -> None:
        """Close the current stage and open the next one."""
        self.finish()
        self.index += 1
        self.write(f'\n[{self.index}/{self.num_stages}] {title} ... '
                   f'(at {self.elapsed():.0f} s)')
        self._current = (key, time.perf_counter())

    def finish(self) -> None:
        """Record the duration of the current stage, if any."""
        if self._current is not None:
            key, begin = self._current
            self.seconds[key] = round(time.perf_counter() - begin, 1)
            self._current = None


def prepare_synthetic_data(out_dir: str, spec: SyntheticDataSpec, reuse: bool,
                           num_workers: int = 1) -> Tuple[dict, bool]:
    """Generate a synthetic dataset, or keep the one in ``out_dir`` when asked and it matches.

    Returns:
        tuple[dict, bool]: The dataset's meta and whether it was reused.
    """
    meta_file = Path(out_dir) / 'meta.json'
    if reuse and meta_file.is_file():
        meta = json.loads(meta_file.read_text(encoding='utf-8'))
        matches = (meta.get('version') == GENERATOR_VERSION and meta.get('seed') == spec.seed
                   and meta.get('size') == spec.size and meta.get('counts') == spec.counts)
        if matches and all((Path(out_dir) / f'{split}.jsonl').is_file() for split in SPLITS):
            return meta, True
    meta = generate_synthetic_fundus(out_dir, spec.num_train, spec.num_val, spec.num_test,
                                     size=spec.size, seed=spec.seed, num_workers=num_workers,
                                     progress=False)  # the demo prints its own stage lines
    return meta, False


def read_manifest(path: Path) -> List[dict]:
    """The records of a JSON Lines manifest (blank lines skipped)."""
    with path.open('rb') as lines:
        records = (parse_manifest_line(line, f'{path}:{number}')
                   for number, line in enumerate(lines, 1))
        return [record for record in records if record is not None]


def measure_labeler(data_root: str, splits: Sequence[str] = SPLITS) -> dict:
    """Label every report of the synthetic splits and compare with the generator's findings.

    The labels go to the label cache next to each manifest, where the pre-training datasets
    read them.

    Returns:
        dict: ``accuracy`` (share of reports whose label vector equals the findings exactly),
        ``per_split`` (the same per split), ``per_class`` (share of reports whose value of the
        class is right), ``reports`` (how many), ``classes`` and ``seconds``.
    """
    lexicon = load_lexicon(None)
    classes = list(lexicon.classes)
    start = time.perf_counter()
    per_split, predicted, truth = {}, [], []
    for split in splits:
        manifest = Path(data_root) / f'{split}.jsonl'
        records = read_manifest(manifest)
        if not records:
            continue
        labels = report_labels([(r['report'], r.get('eye')) for r in records], lexicon,
                               manifest, progress=False)
        findings = np.array([[r['findings'][key] for key in classes] for r in records],
                            dtype=np.float32)
        per_split[split] = float((labels == findings).all(axis=1).mean())
        predicted.append(labels)
        truth.append(findings)
    predicted, truth = np.concatenate(predicted), np.concatenate(truth)
    agreement = (predicted == truth)
    return dict(accuracy=float(agreement.all(axis=1).mean()), per_split=per_split,
                per_class=dict(zip(classes, agreement.mean(axis=0).round(4).tolist())),
                reports=len(truth), classes=classes,
                seconds=round(time.perf_counter() - start, 2))


def write_findings_manifest(data_root: str, split: str) -> str:
    """Write ``{split}_findings.jsonl``: the split's records with the generator's findings as
    ``labels``, so that zero-shot metrics use the ground truth, not the labeler.

    Returns:
        str: The manifest's file name (relative to ``data_root``).
    """
    name = f'{split}_findings.jsonl'
    records = read_manifest(Path(data_root) / f'{split}.jsonl')
    write_text_atomic(Path(data_root) / name, [
        json.dumps({**record, 'labels': record['findings']}, ensure_ascii=False) + '\n'
        for record in records])
    return name


#: Console messages of the zero-shot evaluation the demo leaves out (the log files keep them):
#: what the demo reports itself.
EVALUATION_MESSAGES = ('The prefix is not set in metric class DumpResults',
                       'AUROC: skipped')


class SaveInitialWeightsHook(Hook):
    """Saves the model's initialised weights before the first training iteration.

    The zero-shot "at initialisation" baseline is then the very model that training starts
    from (same seed, same ``init_weights``).
    """

    priority = 'VERY_LOW'

    def __init__(self, filename: str):
        self.filename = filename

    def before_train(self, runner) -> None:
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        save_tensor_checkpoint(weights_to_cpu(get_state_dict(model)), self.filename)


def pretrain(cfg: Config, work_dir: str, data_root: str, max_iters: Optional[int] = None
             ) -> dict:
    """Pre-train the demo model, without validation; the test split of the config as run is
    scored against the generator's findings (``test_findings.jsonl``; ``val_findings.jsonl`` is
    written too, for other uses).

    Returns:
        dict: ``config`` (the config as run, for ``tools/train.py`` / ``tools/test.py``),
        ``checkpoint`` (the last one), ``weights`` (its weights alone, for ``init_cfg``),
        ``checkpoint_at_init``, ``scalars`` (the training log,
        ``vis_data/scalars.json``) and ``iters``.
    """
    cfg = copy.deepcopy(cfg)
    cfg.work_dir = work_dir
    cfg.experiment_name = 'pretrain'  # the runner appends a timestamp
    for split in ('train', 'val', 'test'):
        dataset = cfg[f'{split}_dataloader'].dataset
        dataset.data_root = data_root
        if split != 'train':
            dataset.ann_file = write_findings_manifest(data_root, split)
    if max_iters is not None:
        scale_schedule(cfg, max_iters)
    # The demo scores the test split itself, trained and at initialisation.
    disable_validation(cfg)
    init_checkpoint = osp.join(work_dir, 'init.pth')
    # The environment, config and hook listing would bury the demo's progress: build quietly,
    # then log training (iteration logs, checkpoints) as the config says.
    runner = build_runner(cfg, quiet=True)
    runner.register_hook(SaveInitialWeightsHook(init_checkpoint))
    runner.train()
    with open(osp.join(work_dir, 'last_checkpoint'), encoding='utf-8') as last:
        checkpoint = last.read().strip()
    # The trained weights alone, the file that ``init_cfg=dict(type='Pretrained')`` reads
    # (the classification configs start from it).
    weights = osp.join(work_dir, 'weights.pth')
    model = runner.model.module if is_model_wrapper(runner.model) else runner.model
    save_tensor_checkpoint(weights_to_cpu(get_state_dict(model)), weights)
    return dict(config=osp.join(work_dir, osp.basename(cfg.filename)), checkpoint=checkpoint,
                weights=weights, checkpoint_at_init=init_checkpoint,
                scalars=osp.join(runner.log_dir, 'vis_data', 'scalars.json'),
                iters=cfg.train_cfg.max_iters)


def evaluate_zero_shot(config: str, checkpoint: str, work_dir: str) -> dict:
    """Zero-shot scores of a checkpoint on the config's test split, with mmengine's runner.

    Returns:
        dict: ``macro_auroc`` and ``per_class`` (fractions; classes whose targets hold only
        one outcome are left out and listed in ``skipped``), ``classes``, ``scores`` and
        ``targets`` ((N, C) arrays, for ROC curves) and ``num_samples``.
    """
    cfg = Config.fromfile(config)
    cfg.work_dir = work_dir
    cfg.experiment_name = f'zero_shot_{osp.basename(work_dir)}'
    cfg.load_from = checkpoint
    cfg.log_level = 'WARNING'  # the caller reports the results
    dump_file = osp.join(work_dir, 'predictions.pkl')
    cfg.test_evaluator = [dict(type='AUROC'), dict(type='DumpResults', out_file_path=dump_file)]
    runner = build_runner(cfg, quiet=True)
    drop_console_messages(runner.logger, EVALUATION_MESSAGES)
    metrics = runner.test()
    classes = list(runner.test_dataloader.dataset.metainfo['classes'])
    samples = load(dump_file)
    per_class = {name: metrics[f'auroc/{name}'] / 100 for name in classes
                 if f'auroc/{name}' in metrics}
    return dict(macro_auroc=metrics['auroc/macro'] / 100, per_class=per_class,
                skipped=[name for name in classes if name not in per_class], classes=classes,
                scores=np.stack([s['pred_score'].double().numpy() for s in samples]),
                targets=np.stack([s['gt_score'].double().numpy() for s in samples]),
                num_samples=len(samples))


def _save_figure(figure, path: str) -> None:
    """Save a matplotlib figure as PNG atomically and close it."""
    import matplotlib.pyplot as plt
    try:
        with atomic_open(path) as file:
            figure.savefig(file, format='png', dpi=110, bbox_inches='tight')
    finally:
        plt.close(figure)


def plot_training_curves(scalars_file: str, out_file: str) -> str:
    """Plot the pre-training loss and learning rate over iterations from ``scalars.json``."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    records = [json.loads(line) for line in Path(scalars_file).read_text().splitlines()
               if line.strip()]
    records = [r for r in records if 'loss' in r and 'iter' in r]
    figure, (loss_axis, lr_axis) = plt.subplots(1, 2, figsize=(10, 3.6), layout='constrained')
    loss_axis.plot([r['iter'] for r in records], [r['loss'] for r in records], '.-',
                   color='C0')
    loss_axis.set(title='WSCL pre-training loss', xlabel='iteration', ylabel='loss')
    loss_axis.grid(alpha=0.3)
    lr_axis.plot([r['iter'] for r in records], [r.get('lr', math.nan) for r in records], '.-',
                 color='C1')
    lr_axis.set(title='learning rate', xlabel='iteration', ylabel='lr')
    lr_axis.grid(alpha=0.3)
    _save_figure(figure, out_file)
    return out_file


def plot_roc_curves(trained: dict, at_init: dict, out_file: str) -> str:
    """Plot a ROC curve per evaluated finding, trained model against its initialisation.

    Positives are targets above 0 (uncertain findings count as positive, as in ``AUROC``).
    """
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    from sklearn.metrics import roc_curve
    names = list(trained['per_class'])
    columns = min(5, max(1, len(names)))
    rows = max(1, math.ceil(len(names) / columns))
    figure, axes = plt.subplots(rows, columns, figsize=(3 * columns, 3 * rows), squeeze=False,
                                layout='constrained')
    for axis in axes.flat[len(names):]:
        axis.axis('off')
    for axis, name in zip(axes.flat, names):
        index = trained['classes'].index(name)
        positives = trained['targets'][:, index] > 0
        for result, label, style in ((trained, 'trained', '-'), (at_init, 'init', '--')):
            fpr, tpr, _ = roc_curve(positives, result['scores'][:, index])
            auroc = result['per_class'].get(name, math.nan)
            axis.plot(fpr, tpr, style, label=f'{label} {auroc:.2f}')
        axis.plot([0, 1], [0, 1], ':', color='grey', linewidth=0.8)
        axis.set_title(f'{name} (n+={int(positives.sum())})', fontsize=9)
        axis.set(xlim=(0, 1), ylim=(0, 1.01))
        axis.tick_params(labelsize=7)
        axis.legend(fontsize=7, loc='lower right')
    figure.suptitle(f'Zero-shot ROC on the synthetic test split: macro AUROC '
                    f'{trained["macro_auroc"]:.3f} (init {at_init["macro_auroc"]:.3f})')
    figure.supxlabel('false positive rate')
    figure.supylabel('true positive rate')
    _save_figure(figure, out_file)
    return out_file


class _LinePrefixer(io.TextIOBase):
    """A text stream that starts every line written to ``stream`` with ``prefix``."""

    def __init__(self, stream, prefix: str):
        self.stream, self.prefix, self._line_start = stream, prefix, True

    def write(self, text: str) -> int:
        for line in text.splitlines(keepends=True):
            self.stream.write(self.prefix + line if self._line_start else line)
            self._line_start = line.endswith('\n')
        self.stream.flush()
        return len(text)


def _finetune_task(task: str, config: str, data_root: str, work_dir: str, weights: str,
                   max_iters: Optional[int], threads: int, tag_output: bool) -> dict:
    """Fine-tune one segmentation task (in a worker process when ``tag_output``)."""
    from vilref_mm.apis.segmentation import finetune_segmentation
    torch.set_num_threads(threads)
    if tag_output:  # the tasks run side by side: tell their log lines apart
        sys.stdout = _LinePrefixer(sys.stdout, f'[{task}] ')
    result = finetune_segmentation(config, data_root=osp.join(data_root, task),
                                   work_dir=osp.join(work_dir, task), pretrained=weights,
                                   max_iters=max_iters)
    foreground = {name: value for name, value in result['Dice'].items()
                  if name != 'background'}
    return dict(config=config, Dice=foreground, checkpoint=result['checkpoint'],
                overlay=result['overlay'], iters=result['iters'],
                train_seconds=round(result['train_seconds'], 1))


def finetune_demo_segmentation(configs: Dict[str, str], data_root: str, work_dir: str,
                               weights: str, max_iters: Optional[int] = None,
                               parallel: bool = True) -> dict:
    """Fine-tune the pre-trained image encoder on each segmentation task of the synthetic data.

    Args:
        configs: Task -> segmentation config; tasks are 'vessels' (DRIVE layout) and 'odoc'
            (REFUGE layout), the sub-folders of ``data_root``.
        data_root: The synthetic dataset with the ``vessels/`` and ``odoc/`` layouts.
        work_dir: Each task runs in ``work_dir/<task>``.
        weights: The pre-trained ViLReF weights (image encoder under ``image_encoder.``).
        max_iters: Fine-tuning iterations (None: the configs').
        parallel: Run the tasks side by side in worker processes, sharing this process's
            torch threads among them (one thread each on 2 cores: more work per second than
            one task on 2 threads after the other); log lines start with the task's name.

    Returns:
        dict: ``vessel_dice`` (Dice of the vessel class) and ``odoc_mdice`` (mean Dice of
        optic cup and disc), as fractions, for the tasks run, and per task the per-class
        ``Dice``, ``checkpoint``, ``overlay`` and ``train_seconds``.
    """
    parallel = parallel and len(configs) > 1
    threads = max(1, torch.get_num_threads() // len(configs)) if parallel else \
        torch.get_num_threads()
    arguments = {task: (task, config, data_root, work_dir, weights, max_iters, threads,
                        parallel) for task, config in configs.items()}
    if parallel:
        with ProcessPoolExecutor(len(configs), mp_context=get_context('spawn')) as pool:
            # The workers start (and import the stack) at submit: keep them from repeating
            # the deprecation warnings this process has shown already.
            warnings_option = os.environ.get('PYTHONWARNINGS')
            os.environ['PYTHONWARNINGS'] = 'ignore'
            try:
                futures = {task: pool.submit(_finetune_task, *args)
                           for task, args in arguments.items()}
            finally:
                if warnings_option is None:
                    del os.environ['PYTHONWARNINGS']
                else:
                    os.environ['PYTHONWARNINGS'] = warnings_option
            results = {task: future.result() for task, future in futures.items()}
    else:
        results = {task: _finetune_task(*args) for task, args in arguments.items()}
    summary = dict(results)
    if 'vessels' in results:
        summary['vessel_dice'] = results['vessels']['Dice']['vessel']
    if 'odoc' in results:
        summary['odoc_mdice'] = float(np.nanmean(list(results['odoc']['Dice'].values())))
    return summary


def lookup(summary: dict, path: str):
    """``summary['a']['b']`` for the path 'a.b'; None when absent."""
    value = summary
    for key in path.split('.'):
        if not isinstance(value, dict) or key not in value:
            return None
        value = value[key]
    return value


def check_targets(summary: dict) -> List[dict]:
    """Compare the summary with :data:`DEMO_TARGETS`.

    Returns:
        list[dict]: Per target ``name``, ``value`` (None when not measured), ``comparison``,
        ``threshold`` and ``passed`` (None when not measured).
    """
    checks = []
    for name, (path, comparison, threshold) in DEMO_TARGETS.items():
        value = lookup(summary, path)
        passed = None
        if value is not None:
            passed = value >= threshold if comparison == '>=' else value <= threshold
        checks.append(dict(name=name, value=value, comparison=comparison,
                           threshold=threshold, passed=passed))
    return checks


def format_summary(summary: dict) -> str:
    """A short table of the summary's results, the target checks and where the outputs are."""

    def number(value, digits=3):
        return 'n/a' if value is None else f'{value:.{digits}f}'

    zero_shot = summary['zero_shot']
    rows = [
        ('labeler accuracy (exact match)', number(summary['labeler_accuracy'])),
        ('zero-shot macro AUROC', number(zero_shot['macro_auroc'])),
        ('  at initialisation', number(zero_shot['macro_auroc_at_init'])),
        ('  findings evaluated', f'{len(zero_shot["per_class"])}'),
        ('vessel Dice', number(lookup(summary, 'segmentation.vessel_dice'))),
        ('optic disc/cup mean Dice', number(lookup(summary, 'segmentation.odoc_mdice'))),
        ('elapsed', f'{summary["elapsed_s"]:.0f} s'),
    ]
    width = max(len(name) for name, _ in rows)
    lines = ['', 'Demo summary', '-' * (width + 12)]
    lines += [f'{name:<{width}}  {value:>8}' for name, value in rows]
    lines.append('-' * (width + 12))
    for check in summary['checks']:
        status = {True: 'PASS', False: 'FAIL', None: 'SKIP'}[check['passed']]
        value = 'not measured' if check['value'] is None else number(check['value'])
        lines.append(f'{status}  {check["name"]}: {value} {check["comparison"]} '
                     f'{check["threshold"]:g}')
    lines.append('')
    lines.append(f'summary:    {summary["summary_file"]}')
    lines.append(f'checkpoint: {summary["checkpoint"]}')
    lines.append(f'config:     {summary["config"]}')
    lines += [f'plot:       {path}' for path in summary['plots'].values()]
    lines += ['', 'zero-shot findings of a photograph (docs/zero_shot.md):',
              f'  python tools/zero_shot.py {summary["config"]} {summary["checkpoint"]} '
              'demo/fundus_normal_left_eye.jpg']
    return '\n'.join(lines)


def run_demo(options: DemoOptions, start: Optional[float] = None) -> dict:
    """Run the demo and write ``<work_dir>/summary.json``.

    Args:
        options: What to run.
        start: ``time.perf_counter()`` at which the demo started (None: now), for
            ``elapsed_s``.

    Returns:
        dict: The summary (see ``docs/demo.md``).
    """
    work_dir = options.work_dir
    data_root = osp.join(work_dir, 'data')
    segmentation = bool(options.segmentation_configs)
    stage = StageLog(6 if segmentation else 5, start)
    os.makedirs(work_dir, exist_ok=True)

    stage('data', f'generating the synthetic dataset ({options.data.num_train} train, '
          f'{options.data.num_val} val, {options.data.num_test} test, {options.data.size} px) '
          f'in {data_root}')
    meta, reused = prepare_synthetic_data(data_root, options.data, options.reuse_data,
                                          options.data_workers)
    stage.write('  reused the existing data (its meta.json matches)' if reused else
                f'  {sum(meta["counts"].values())} images in {meta["seconds"]:.0f} s')

    stage('labeler', 'labelling the reports and measuring the labeler against the truth')
    labeler = measure_labeler(data_root)
    stage.write(f'  {labeler["reports"]} reports, exact-match accuracy '
                f'{labeler["accuracy"]:.4f}')

    cfg = Config.fromfile(options.config)
    iters = options.max_iters or cfg.train_cfg.max_iters
    stage('pretrain', f'pre-training ViLReF (WSCL, momentum towers, memory queue) for '
          f'{iters} iterations')
    run = pretrain(cfg, osp.join(work_dir, 'pretrain'), data_root, options.max_iters)

    stage('zero_shot', 'zero-shot evaluation on the test split (trained and at initialisation)')
    trained = evaluate_zero_shot(run['config'], run['checkpoint'],
                                 osp.join(work_dir, 'zero_shot', 'trained'))
    at_init = evaluate_zero_shot(run['config'], run['checkpoint_at_init'],
                                 osp.join(work_dir, 'zero_shot', 'init'))
    stage.write(f'  macro AUROC over {len(trained["per_class"])} findings: '
                f'{trained["macro_auroc"]:.4f} trained, {at_init["macro_auroc"]:.4f} at '
                'initialisation' + (f'; without both outcomes in the test split: '
                                    f'{", ".join(trained["skipped"])}' if trained['skipped']
                                    else ''))

    segmentation_summary = None
    if segmentation:
        stage('segmentation', 'fine-tuning the pre-trained image encoder for '
              + ' and '.join(options.segmentation_configs) + ' segmentation')
        seg_root = osp.join(work_dir, 'segmentation_data')
        prepare_synthetic_data(seg_root, options.segmentation_data, options.reuse_data,
                               options.data_workers)
        segmentation_summary = finetune_demo_segmentation(
            options.segmentation_configs, seg_root, osp.join(work_dir, 'segmentation'),
            run['weights'], options.segmentation_iters)

    stage('report', 'plots and summary')
    plots_dir = osp.join(work_dir, 'plots')
    plots = dict(
        training_loss=plot_training_curves(run['scalars'],
                                           osp.join(plots_dir, 'training_loss.png')),
        roc_curves=plot_roc_curves(trained, at_init, osp.join(plots_dir, 'roc_curves.png')))
    if segmentation_summary:
        plots.update({f'overlay_{task}': segmentation_summary[task]['overlay']
                      for task in options.segmentation_configs})
    stage.finish()

    summary = dict(
        labeler_accuracy=labeler['accuracy'],
        labeler={key: labeler[key] for key in ('per_split', 'per_class', 'reports')},
        zero_shot=dict(
            macro_auroc=trained['macro_auroc'],
            macro_auroc_at_init=at_init['macro_auroc'],
            gain=trained['macro_auroc'] - at_init['macro_auroc'],
            per_class=trained['per_class'],
            per_class_at_init=at_init['per_class'],
            skipped=trained['skipped'],
            num_test=trained['num_samples'],
            targets='generator findings; uncertain (0.5) counts as positive'),
        config=run['config'],
        checkpoint=run['checkpoint'],
        weights=run['weights'],
        checkpoint_at_init=run['checkpoint_at_init'],
        pretrain_iters=run['iters'],
        plots=plots,
        data=dict(root=data_root, **asdict(options.data)),
        stage_seconds=stage.seconds,
        summary_file=osp.join(work_dir, 'summary.json'),
    )
    if segmentation_summary is not None:
        summary['segmentation'] = segmentation_summary
    summary['elapsed_s'] = round(stage.elapsed(), 1)
    summary['checks'] = check_targets(summary)
    write_text_atomic(summary['summary_file'],
                      [json.dumps(summary, ensure_ascii=False, indent=2) + '\n'])
    return summary
