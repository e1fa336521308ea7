"""PerClassIoUMetric: mmseg's IoUMetric with per-class values, alone and in runner.test()."""
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.registry import DefaultScope
from mmseg.evaluation import IoUMetric
from mmseg.registry import METRICS

from vilref_mm.apis.segmentation import metrics_by_class
from vilref_mm.engine import build_runner
from vilref_mm.evaluation import PerClassIoUMetric

CONFIG = (Path(__file__).resolve().parents[2] / 'configs' / 'segmentation' /
          'upernet_vilref-vit-mini-p16_1xb4-300it_synthetic-vessels-192x192.py')
CLASSES = ('background', ' Optic Cup', 'Optic Disc')  # mmseg's REFUGE names
# Two 3 x 4 maps; 255 is ignored.
GROUND_TRUTH = [np.array([[0, 0, 1, 1], [0, 2, 2, 1], [0, 2, 2, 255]]),
                np.array([[0, 0, 0, 0], [0, 2, 2, 0], [0, 0, 0, 0]])]
PREDICTION = [np.array([[0, 1, 1, 0], [0, 2, 2, 1], [2, 2, 0, 1]]),
              np.array([[0, 0, 0, 0], [0, 2, 0, 0], [0, 0, 0, 2]])]


@pytest.fixture(autouse=True)
def mmseg_scope():
    with DefaultScope.overwrite_default_scope('mmseg'):
        yield


def evaluate(metric) -> dict:
    metric.dataset_meta = dict(classes=CLASSES)
    samples = [dict(pred_sem_seg=dict(data=torch.from_numpy(pred)[None]),
                    gt_sem_seg=dict(data=torch.from_numpy(truth)[None]))
               for pred, truth in zip(PREDICTION, GROUND_TRUTH)]
    metric.process({}, samples)
    return metric.evaluate(len(samples))


def direct_dice_and_iou(index: int):
    """Dice and IoU of one class over both maps, in percent, counted directly."""
    truth = np.concatenate([t.ravel() for t in GROUND_TRUTH])
    pred = np.concatenate([p.ravel() for p in PREDICTION])
    pred, truth = pred[truth != 255] == index, truth[truth != 255] == index
    both, either = (pred & truth).sum(), (pred | truth).sum()
    if either == 0:
        return math.nan, math.nan
    return 100 * 2 * both / (pred.sum() + truth.sum()), 100 * both / either


def test_per_class_values_and_means_of_iou_metric():
    metrics = evaluate(METRICS.build(dict(type='PerClassIoUMetric',
                                          iou_metrics=['mDice', 'mIoU'])))
    for index, name in enumerate(['background', 'Optic Cup', 'Optic Disc']):
        dice, iou = direct_dice_and_iou(index)
        np.testing.assert_allclose([metrics[f'Dice.{name}'], metrics[f'IoU.{name}']],
                                   [dice, iou], atol=0.005)
    # the means and the overall accuracy are mmseg's
    upstream = evaluate(IoUMetric(iou_metrics=['mDice', 'mIoU']))
    assert upstream == {key: metrics[key] for key in upstream}
    assert metrics['mDice'] == pytest.approx(
        np.mean([metrics[f'Dice.{name}'] for name in ('background', 'Optic Cup',
                                                      'Optic Disc')]), abs=0.01)
    assert {key.split('.')[0] for key in metrics if '.' in key} == {'Dice', 'IoU', 'Acc'}


def test_class_absent_everywhere_is_nan():
    metric = PerClassIoUMetric(iou_metrics=['mDice'])
    metric.dataset_meta = dict(classes=('background', 'vessel', 'unused'))
    truth = torch.tensor([[[0, 1], [1, 0]]])
    metric.process({}, [dict(pred_sem_seg=dict(data=truth), gt_sem_seg=dict(data=truth))])
    metrics = metric.evaluate(1)
    assert metrics['Dice.vessel'] == metrics['Dice.background'] == 100.0
    assert math.isnan(metrics['Dice.unused'])


def test_metrics_by_class():
    assert metrics_by_class({'mDice': 80.0, 'Dice.vessel': 70.0, 'Dice.background': 90.0}) \
        == {'mDice': 0.8, 'Dice': {'vessel': 0.7, 'background': 0.9}}


def test_runner_test_returns_per_class_values(tmp_path, synthetic_fundus):
    """runner.test() of the synthetic vessel config (random weights) on its test split."""
    cfg = Config.fromfile(CONFIG)
    cfg.work_dir = str(tmp_path)
    cfg.test_dataloader.dataset.data_root = str(synthetic_fundus / 'vessels')
    cfg.test_dataloader.num_workers = 0
    metrics = build_runner(cfg, quiet=True).test()
    assert cfg.test_evaluator.type == 'PerClassIoUMetric'
    per_class = {key for key in metrics if '.' in key}
    assert per_class == {f'{metric}.{name}' for metric in ('Dice', 'IoU', 'Acc')
                         for name in ('background', 'vessel')}
    assert all(0 <= metrics[key] <= 100 for key in per_class)
    assert metrics['mDice'] == pytest.approx(
        (metrics['Dice.background'] + metrics['Dice.vessel']) / 2, abs=0.01)
