"""AUROC and quadratic weighted kappa against scikit-learn, and with mmpretrain's metrics."""
import logging
import math

import numpy as np
import pytest
import torch
from mmengine.evaluator import Evaluator
from mmengine.logging import MMLogger
from mmpretrain.registry import METRICS
from mmpretrain.structures import DataSample
from sklearn.metrics import average_precision_score, cohen_kappa_score, roc_auc_score

from vilref_mm.evaluation import AUROC, QuadraticWeightedKappa


def multi_label_samples(scores: np.ndarray, targets: np.ndarray) -> list:
    return [DataSample().set_pred_score(torch.from_numpy(score)).set_gt_score(
        torch.from_numpy(target)) for score, target in zip(scores, targets)]


def multi_class_samples(scores: np.ndarray, labels: np.ndarray) -> list:
    return [DataSample().set_pred_score(torch.from_numpy(score)).set_gt_label(int(label))
            for score, label in zip(scores, labels)]


def evaluate(metrics, samples, classes=None, batch_size=7) -> dict:
    """Run metrics (configs built from mmpretrain's registry, or instances) in batches."""
    metrics = metrics if isinstance(metrics, list) else [metrics]
    evaluator = Evaluator([METRICS.build(metric) if isinstance(metric, dict) else metric
                           for metric in metrics])
    if classes is not None:
        evaluator.dataset_meta = dict(classes=classes)
    for start in range(0, len(samples), batch_size):
        evaluator.process(samples[start:start + batch_size])
    return evaluator.evaluate(len(samples))


def test_multi_label_auroc_matches_sklearn_per_class_and_macro():
    rng = np.random.default_rng(0)
    targets = (rng.random((50, 4)) < 0.4).astype(np.float32)
    scores = (rng.random((50, 4)) + 0.5 * targets).astype(np.float32)
    classes = ('normal', 'glaucoma', 'hemorrhage', 'drusen')
    results = evaluate(dict(type='AUROC'), multi_label_samples(scores, targets), classes)
    expected = [roc_auc_score(targets[:, c], scores[:, c]) * 100 for c in range(4)]
    for name, value in zip(classes, expected):
        assert results[f'auroc/{name}'] == pytest.approx(value, abs=1e-9)
    assert results['auroc/macro'] == pytest.approx(
        roc_auc_score(targets, scores, average='macro') * 100, abs=1e-9)
    assert results['auroc/skipped'] == 0


def test_multi_class_auroc_is_one_vs_rest():
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 3, 40)
    logits = rng.normal(size=(40, 3)) + np.eye(3)[labels]
    scores = torch.from_numpy(logits).float().softmax(-1).numpy()
    metric = AUROC(per_class=False)
    results = evaluate(metric, multi_class_samples(scores, labels))
    assert set(results) == {'auroc/macro', 'auroc/skipped'}
    assert results['auroc/macro'] == pytest.approx(
        roc_auc_score(labels, scores, multi_class='ovr', average='macro') * 100, abs=1e-4)


def test_classes_without_both_outcomes_are_skipped_and_logged():
    rng = np.random.default_rng(2)
    targets = (rng.random((30, 3)) < 0.5).astype(np.float32)
    targets[:, 1] = 0  # never present
    targets[:, 2] = 1  # always present
    scores = rng.random((30, 3)).astype(np.float32)
    messages = []
    handler = logging.Handler()
    handler.emit = lambda record: messages.append(record.getMessage())
    logger = MMLogger.get_current_instance()
    logger.addHandler(handler)
    try:
        results = evaluate(dict(type='AUROC'), multi_label_samples(scores, targets),
                           ('a', 'b', 'c'))
    finally:
        logger.removeHandler(handler)
    assert results['auroc/skipped'] == 2
    assert 'auroc/b' not in results and 'auroc/c' not in results
    assert results['auroc/macro'] == pytest.approx(
        roc_auc_score(targets[:, 0], scores[:, 0]) * 100)
    assert any('skipped 2 of 3 classes' in message and 'b, c' in message
               for message in messages)


def test_all_classes_skipped_gives_nan_not_an_error():
    samples = multi_label_samples(np.random.rand(4, 2).astype(np.float32),
                                  np.zeros((4, 2), np.float32))
    results = evaluate(dict(type='AUROC'), samples)
    assert math.isnan(results['auroc/macro']) and results['auroc/skipped'] == 2


@pytest.mark.parametrize('policy,uncertain_as', [('positive', 1.), ('negative', 0.),
                                                 ('ignore', None)])
def test_uncertain_targets(policy, uncertain_as):
    rng = np.random.default_rng(3)
    targets = rng.choice([0., 0.5, 1.], size=(40, 2)).astype(np.float32)
    scores = (rng.random((40, 2)) + 0.3 * targets).astype(np.float32)
    results = evaluate(dict(type='AUROC', uncertain=policy),
                       multi_label_samples(scores, targets), ('x', 'y'))
    for column, name in enumerate(('x', 'y')):
        target, score = targets[:, column], scores[:, column]
        if uncertain_as is None:
            keep = target != 0.5
            target, score = target[keep], score[keep]
        else:
            target = np.where(target == 0.5, uncertain_as, target)
        assert results[f'auroc/{name}'] == pytest.approx(roc_auc_score(target, score) * 100)


def test_auroc_rejects_wrong_number_of_class_names():
    samples = multi_label_samples(np.random.rand(4, 2).astype(np.float32),
                                  np.array([[0, 1], [1, 0]] * 2, np.float32))
    with pytest.raises(ValueError, match='3 class names for 2 score columns'):
        evaluate(dict(type='AUROC', classes=['a', 'b', 'c']), samples)
    with pytest.raises(ValueError, match='uncertain'):
        AUROC(uncertain='maybe')


@pytest.mark.parametrize('seed', range(5))
def test_quadratic_weighted_kappa_matches_sklearn(seed):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 4, 80)
    preds = np.clip(labels + rng.integers(-1, 2, 80), 0, 3)
    expected = cohen_kappa_score(labels, preds, weights='quadratic')
    scores = np.eye(4, dtype=np.float32)[preds] + rng.random((80, 4)).astype(np.float32) * 0.1
    results = evaluate(dict(type='QuadraticWeightedKappa'), multi_class_samples(scores, labels))
    assert results['grading/qwk'] == pytest.approx(expected * 100, abs=1e-9)


def test_quadratic_weighted_kappa_from_labels_and_undefined_case():
    labels = np.array([0, 1, 2, 2, 1])
    preds = np.array([0, 2, 2, 1, 1])
    samples = [DataSample().set_pred_label(int(p)).set_gt_label(int(t))
               for p, t in zip(preds, labels)]
    results = evaluate(QuadraticWeightedKappa(num_classes=3), samples)
    assert results['grading/qwk'] == pytest.approx(
        cohen_kappa_score(labels, preds, weights='quadratic') * 100)
    undefined = [DataSample().set_pred_label(1).set_gt_label(1) for _ in range(3)]
    assert math.isnan(evaluate(QuadraticWeightedKappa(num_classes=3), undefined)['grading/qwk'])
    samples = [DataSample().set_pred_label(3).set_gt_label(0)]
    with pytest.raises(ValueError, match=r'predicted grades must lie in \[0, 3\)'):
        evaluate(QuadraticWeightedKappa(num_classes=3), samples)


def test_multi_label_evaluator_with_mmpretrain_metrics():
    rng = np.random.default_rng(4)
    targets = (rng.random((32, 3)) < 0.5).astype(np.float32)
    scores = 0.6 * rng.random((32, 3)) + 0.4 * targets  # float64, as zero-shot scores are
    results = evaluate([
        dict(type='AUROC'),
        dict(type='AveragePrecision'),
        dict(type='MultiLabelMetric', items=('f1-score', ), average='macro'),
    ], multi_label_samples(scores, targets), ('n', 'd', 'g'))
    assert {'auroc/macro', 'auroc/n', 'auroc/skipped', 'multi-label/mAP',
            'multi-label/f1-score'} <= set(results)
    assert results['auroc/macro'] == pytest.approx(roc_auc_score(targets, scores) * 100)
    assert results['multi-label/mAP'] == pytest.approx(
        average_precision_score(targets, scores, average='macro') * 100, abs=1e-4)


def test_multi_class_evaluator_with_accuracy_and_kappa():
    rng = np.random.default_rng(5)
    labels = rng.integers(0, 4, 30)
    scores = torch.from_numpy(rng.normal(size=(30, 4)) + 2 * np.eye(4)[labels])
    scores = scores.softmax(-1).numpy()  # float64, as zero-shot scores are
    results = evaluate([
        dict(type='AUROC'),
        dict(type='Accuracy', topk=(1, )),
        dict(type='QuadraticWeightedKappa'),
    ], multi_class_samples(scores, labels), ('g0', 'g1', 'g2', 'g3'))
    assert results['accuracy/top1'] == pytest.approx(
        (scores.argmax(1) == labels).mean() * 100, abs=1e-4)
    assert results['grading/qwk'] == pytest.approx(
        cohen_kappa_score(labels, scores.argmax(1), weights='quadratic') * 100)
    assert results['auroc/g2'] == pytest.approx(
        roc_auc_score(labels == 2, scores[:, 2]) * 100)


def test_empty_results_give_nan_not_an_error():
    assert math.isnan(AUROC().compute_metrics([])['macro'])
    assert math.isnan(QuadraticWeightedKappa().compute_metrics([])['qwk'])
