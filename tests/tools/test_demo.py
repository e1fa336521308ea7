"""The demo (tools/demo.py and its stages, tools/demo_stages.py): end to end at a tiny
scale, and its parts."""
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from mmengine.config import Config

from vilref_mm.labeling import ReportLabeler
from vilref_mm.utils.checkpoint import load_checkpoint_file
from tool_modules import load_module

REPO = Path(__file__).resolve().parents[2]
DEMO_CONFIG = REPO / 'configs/vilref/vilref_vit-tiny-p16_1xb32-450it_synthetic-112px.py'


stages = load_module('tools/demo_stages.py')


@pytest.fixture(scope='module')
def demo_run(tmp_path_factory):
    """One tiny demo: 64 training images (two batches of 32), 3 pre-training iterations,
    2 segmentation iterations per task (vessels and optic disc/cup, side by side) on 64 px
    images."""
    work_dir = tmp_path_factory.mktemp('demo')
    env = {**os.environ, 'PYTHONPATH': f'{REPO}{os.pathsep}{os.environ.get("PYTHONPATH", "")}'}
    proc = subprocess.run(
        [sys.executable, 'tools/demo.py', '--work-dir', str(work_dir), '--num-train', '64',
         '--num-val', '8', '--num-test', '24', '--max-iters', '3', '--seg-iters', '2',
         '--seg-num-train', '4', '--seg-num-val', '2', '--seg-size', '64',
         '--seg-tasks', 'vessels', 'odoc'],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-6000:]
    summary = json.loads((work_dir / 'summary.json').read_text(encoding='utf-8'))
    return work_dir, summary, proc.stdout


def _is_fraction(value) -> bool:
    return isinstance(value, float) and 0.0 <= value <= 1.0


def test_summary_holds_the_results(demo_run):
    work_dir, summary, _ = demo_run
    classes = ReportLabeler().classes

    assert _is_fraction(summary['labeler_accuracy'])
    # the labeler's accuracy, measured again from the data the demo wrote
    records = [json.loads(line) for split in ('train', 'val', 'test')
               for line in (work_dir / 'data' / f'{split}.jsonl').read_text().splitlines()]
    labeler = ReportLabeler()
    exact = [np.array_equal(labeler(r['report'], r['eye']),
                            np.array([r['findings'][k] for k in classes], np.float32))
             for r in records]
    assert summary['labeler_accuracy'] == pytest.approx(np.mean(exact))
    assert summary['labeler']['reports'] == len(records) == 64 + 8 + 24

    zero_shot = summary['zero_shot']
    assert _is_fraction(zero_shot['macro_auroc'])
    assert _is_fraction(zero_shot['macro_auroc_at_init'])
    per_class = zero_shot['per_class']
    assert per_class and set(per_class) <= set(classes)
    assert all(_is_fraction(value) for value in per_class.values())
    assert zero_shot['macro_auroc'] == pytest.approx(np.mean(list(per_class.values())))
    assert zero_shot['gain'] == pytest.approx(zero_shot['macro_auroc']
                                              - zero_shot['macro_auroc_at_init'])
    # evaluated: exactly the findings with both outcomes among the 24 test images
    test = [json.loads(line) for line in
            (work_dir / 'data' / 'test.jsonl').read_text().splitlines()]
    both = {k for k in classes if 0 < sum(r['findings'][k] > 0 for r in test) < len(test)}
    assert set(per_class) == both
    assert set(zero_shot['skipped']) == set(classes) - both
    assert zero_shot['num_test'] == 24

    segmentation = summary['segmentation']
    assert _is_fraction(segmentation['vessel_dice'])
    assert _is_fraction(segmentation['odoc_mdice'])
    assert set(segmentation['odoc']['Dice']) == {'Optic Cup', 'Optic Disc'}

    assert isinstance(summary['elapsed_s'], float) and summary['elapsed_s'] > 0
    assert summary['pretrain_iters'] == 3
    assert [check['name'] for check in summary['checks']] == list(stages.DEMO_TARGETS)


def test_config_and_checkpoints_are_usable(demo_run):
    work_dir, summary, _ = demo_run
    cfg = Config.fromfile(summary['config'])
    assert cfg.train_cfg.max_iters == 3
    # the test split is scored against the generator's findings
    test_manifest = Path(cfg.test_dataloader.dataset.data_root) / \
        cfg.test_dataloader.dataset.ann_file
    assert test_manifest.is_file() and all(
        json.loads(line)['labels'] == json.loads(line)['findings']
        for line in test_manifest.read_text().splitlines())

    trained = load_checkpoint_file(summary['checkpoint'])
    initial = load_checkpoint_file(summary['checkpoint_at_init'])
    assert trained['meta']['iter'] == 3
    key = 'image_encoder.layers.0.attn.qkv.weight'
    assert trained['state_dict'][key].shape == initial['state_dict'][key].shape
    assert not torch.equal(trained['state_dict'][key], initial['state_dict'][key])
    for task in ('vessels', 'odoc'):
        assert Path(summary['segmentation'][task]['checkpoint']).is_file()


def test_zero_shot_config_repeats_the_demo_score(demo_run, tmp_path):
    """configs/zero_shot/vilref_vit-tiny-p16_zero-shot_synthetic-112px.py with the demo's
    weights gives the demo's macro AUROC."""
    work_dir, summary, _ = demo_run
    out = tmp_path / 'metrics.json'
    env = {**os.environ, 'PYTHONPATH': f'{REPO}{os.pathsep}{os.environ.get("PYTHONPATH", "")}'}
    proc = subprocess.run(
        [sys.executable, 'tools/test.py',
         'configs/zero_shot/vilref_vit-tiny-p16_zero-shot_synthetic-112px.py', summary['weights'],
         '--work-dir', str(tmp_path), '--out', str(out), '--cfg-options',
         f'test_dataloader.dataset.data_root={work_dir / "data"}'],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    metrics = json.loads(out.read_text(encoding='utf-8'))
    assert metrics['auroc/macro'] / 100 == pytest.approx(summary['zero_shot']['macro_auroc'],
                                                         abs=1e-6)
    assert metrics['auroc/skipped'] == len(summary['zero_shot']['skipped'])


def test_plots_are_written(demo_run):
    _, summary, _ = demo_run
    assert set(summary['plots']) == {'training_loss', 'roc_curves', 'overlay_vessels',
                                     'overlay_odoc'}
    for name, path in summary['plots'].items():
        image = cv2.imread(path)
        assert image is not None, path
        if name.startswith('overlay_'):  # painted over a 64 px validation photograph
            assert image.shape == (64, 64, 3)
        else:
            assert min(image.shape[:2]) > 200, (path, image.shape)


def test_progress_and_printed_summary(demo_run):
    _, summary, stdout = demo_run
    lines = stdout.splitlines()
    headers = [line[:5] for line in lines if re.match(r'\[\d/\d\] ', line)]
    assert headers == [f'[{i}/6]' for i in range(1, 7)]
    # the two segmentation tasks train side by side, their log lines tagged
    for task in ('vessels', 'odoc'):
        assert any(line.startswith(f'[{task}] ') and 'Iter(train)' in line for line in lines)
    assert 'Demo summary' in stdout
    assert f'{summary["zero_shot"]["macro_auroc"]:.3f}' in stdout
    for check in summary['checks']:
        status = 'PASS' if check['passed'] else 'FAIL'
        assert f'{status}  {check["name"]}' in stdout
    assert summary['checkpoint'] in stdout


def test_data_is_reused_only_when_it_matches(tmp_path):
    spec = stages.SyntheticDataSpec(num_train=3, num_val=1, num_test=2, size=32, seed=5)
    _, reused = stages.prepare_synthetic_data(str(tmp_path), spec, reuse=True)
    assert not reused
    meta, reused = stages.prepare_synthetic_data(str(tmp_path), spec, reuse=True)
    assert reused and meta['counts'] == spec.counts
    _, reused = stages.prepare_synthetic_data(str(tmp_path), spec, reuse=False)
    assert not reused
    bigger = stages.SyntheticDataSpec(num_train=4, num_val=1, num_test=2, size=32, seed=5)
    meta, reused = stages.prepare_synthetic_data(str(tmp_path), bigger, reuse=True)
    assert not reused and meta['counts']['train'] == 4
    assert len((tmp_path / 'train.jsonl').read_text().splitlines()) == 4


def test_labeler_measurement_counts_mismatches(tmp_path):
    spec = stages.SyntheticDataSpec(num_train=6, num_val=2, num_test=2, size=32, seed=1)
    stages.prepare_synthetic_data(str(tmp_path), spec, reuse=False)
    manifest = tmp_path / 'train.jsonl'
    records = [json.loads(line) for line in manifest.read_text().splitlines()]
    records[0]['findings'] = {key: 0.0 if value else 1.0
                              for key, value in records[0]['findings'].items()}
    manifest.write_text(''.join(json.dumps(r, ensure_ascii=False) + '\n' for r in records))
    result = stages.measure_labeler(str(tmp_path))
    assert result['reports'] == 10
    assert result['per_split']['train'] <= 5 / 6
    assert result['accuracy'] <= 9 / 10
    assert all(value <= 9 / 10 for value in result['per_class'].values())


def test_targets_and_summary_table():
    summary = dict(
        labeler_accuracy=0.99, zero_shot=dict(macro_auroc=0.85, macro_auroc_at_init=0.75,
                                              gain=0.10, per_class={'normal': 0.85}),
        elapsed_s=700.0, summary_file='s.json', checkpoint='c.pth', config='c.py',
        plots={'roc_curves': 'roc.png'})
    checks = {check['name']: check for check in stages.check_targets(summary)}
    assert checks['zero-shot macro AUROC']['passed'] is True
    assert checks['gain over initialisation']['passed'] is False
    assert checks['vessel Dice']['passed'] is None and checks['vessel Dice']['value'] is None
    assert checks['elapsed seconds']['passed'] is False
    summary['checks'] = list(checks.values())
    table = stages.format_summary(summary)
    assert 'PASS  zero-shot macro AUROC: 0.850 >= 0.8' in table
    assert 'FAIL  gain over initialisation: 0.100 >= 0.15' in table
    assert 'SKIP  vessel Dice: not measured' in table
    assert 'roc.png' in table
    assert 'tools/zero_shot.py c.py c.pth demo/fundus_normal_left_eye.jpg' in table
