"""Downstream metrics: AUROC (macro and per class) and quadratic weighted kappa.

Both follow mmpretrain's conventions: they read ``pred_score`` (and ``gt_score`` or
``gt_label``) from the data samples, report percentages, and combine with mmpretrain's
``Accuracy``, ``AveragePrecision`` and ``MultiLabelMetric`` in one evaluator. The numbers are
scikit-learn's (``roc_auc_score``, ``cohen_kappa_score``); what is added is the handling of
classes, uncertain labels and undefined cases.
"""
import math
import warnings
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch
from mmengine.evaluator import BaseMetric
from mmengine.logging import MMLogger
from mmpretrain.registry import METRICS
from mmpretrain.structures import label_to_onehot
from sklearn.exceptions import UndefinedMetricWarning
from sklearn.metrics import cohen_kappa_score, roc_auc_score

UNCERTAIN_POLICIES = ('positive', 'negative', 'ignore')


@METRICS.register_module()
class AUROC(BaseMetric):
    """Area under the ROC curve per class and its macro average, in percent.

    Multi-label samples give ``gt_score`` (C, ); multi-class samples give ``gt_label`` and are
    scored one-vs-rest. A class whose targets hold only one outcome has no AUROC: it is
    skipped (logged as a warning, counted in ``skipped``) and left out of the macro average.

    Uncertain targets (``0 < gt_score < 1``, e.g. 0.5 from "可疑青光眼") count as positive by
    default; ``uncertain='negative'`` counts them negative, ``'ignore'`` leaves those samples
    out of that class's AUROC.

    Results (with the default prefix ``auroc``): ``auroc/macro``, ``auroc/<class>`` per
    evaluated class (when ``per_class``) and ``auroc/skipped``. Class names come from
    ``classes``, else the dataset's ``classes`` meta, else the class indices.

    Args:
        classes: Names of the score columns.
        uncertain: 'positive', 'negative' or 'ignore'.
        per_class: Report each class's AUROC besides the macro average.
        collect_device: 'cpu' or 'gpu', for collecting results across ranks.
        prefix: Prefix of the result keys. Defaults to 'auroc'.
    """
    default_prefix = 'auroc'

    def __init__(self,
                 classes: Optional[Sequence[str]] = None,
                 uncertain: str = 'positive',
                 per_class: bool = True,
                 collect_device: str = 'cpu',
                 prefix: Optional[str] = None) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        if uncertain not in UNCERTAIN_POLICIES:
            raise ValueError(f'AUROC: uncertain={uncertain!r} is not one of '
                             f'{UNCERTAIN_POLICIES}')
        self.classes = tuple(classes) if classes is not None else None
        self.uncertain = uncertain
        self.per_class = per_class

    def process(self, data_batch, data_samples: Sequence[dict]) -> None:
        """Keep each sample's ``pred_score`` and its targets as a (C, ) vector."""
        for sample in data_samples:
            # float64 keeps near-certain scores apart (float32 rounds them to a tied 1.0).
            score = sample['pred_score'].detach().double().cpu()
            if 'gt_score' in sample:
                target = sample['gt_score'].detach().double().cpu()
            else:
                target = label_to_onehot(sample['gt_label'].cpu(), len(score)).double()
            self.results.append({'pred_score': score, 'gt_score': target})

    def class_names(self, num_classes: int) -> Sequence[str]:
        """Names of the ``num_classes`` score columns."""
        names = self.classes or (self.dataset_meta or {}).get('classes')
        if names is None:
            return [str(index) for index in range(num_classes)]
        if len(names) != num_classes:
            raise ValueError(f'AUROC: {len(names)} class names for {num_classes} score '
                             'columns; set AUROC(classes=...) to one name per column')
        return names

    def compute_metrics(self, results: List[dict]) -> Dict[str, float]:
        """Per-class and macro AUROC (percent) and the number of skipped classes."""
        if not results:
            return {'macro': math.nan, 'skipped': 0}
        scores = torch.stack([result['pred_score'] for result in results]).numpy()
        targets = torch.stack([result['gt_score'] for result in results]).numpy()
        names = self.class_names(scores.shape[1])
        per_class, skipped = {}, []
        for index, name in enumerate(names):
            score, target = scores[:, index], targets[:, index]
            uncertain = (target > 0) & (target < 1)
            if self.uncertain == 'ignore':
                score, target = score[~uncertain], target[~uncertain]
                positives = target >= 1
            else:
                positives = (target >= 1) | (uncertain & (self.uncertain == 'positive'))
            if positives.all() or not positives.any():
                skipped.append(name)
                continue
            per_class[name] = float(roc_auc_score(positives, score)) * 100
        if skipped:
            MMLogger.get_current_instance().warning(
                f'AUROC: skipped {len(skipped)} of {len(names)} classes whose targets hold '
                f'only one outcome: {", ".join(skipped)}')
        metrics = {'macro': float(np.mean(list(per_class.values()))) if per_class else math.nan}
        if self.per_class:
            metrics.update(per_class)
        metrics['skipped'] = len(skipped)
        return metrics


@METRICS.register_module()
class QuadraticWeightedKappa(BaseMetric):
    """Quadratic weighted kappa of graded predictions, in percent (``grading/qwk``).

    The predicted grade is the argmax of ``pred_score`` (``pred_label`` when a sample has no
    scores); the true grade is ``gt_label``.

    Args:
        num_classes: Number of grades. Defaults to the length of ``pred_score`` (or, with
            labels only, the largest grade seen plus one).
        collect_device: 'cpu' or 'gpu', for collecting results across ranks.
        prefix: Prefix of the result key. Defaults to 'grading'.
    """
    default_prefix = 'grading'

    def __init__(self,
                 num_classes: Optional[int] = None,
                 collect_device: str = 'cpu',
                 prefix: Optional[str] = None) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        self.num_classes = num_classes

    def process(self, data_batch, data_samples: Sequence[dict]) -> None:
        """Keep each sample's predicted grade, true grade and number of grades."""
        for sample in data_samples:
            if 'pred_score' in sample:
                pred = int(sample['pred_score'].argmax())
                num_classes = len(sample['pred_score'])
            else:
                pred, num_classes = int(sample['pred_label'].reshape(-1)[0]), None
            target = int(sample['gt_label'].reshape(-1)[0])
            self.results.append({'pred': pred, 'target': target, 'num_classes': num_classes})

    def compute_metrics(self, results: List[dict]) -> Dict[str, float]:
        """The kappa (percent); NaN, with a warning, when it is undefined."""
        if not results:
            return {'qwk': math.nan}
        preds = np.array([result['pred'] for result in results])
        targets = np.array([result['target'] for result in results])
        num_classes = self.num_classes or next(
            (result['num_classes'] for result in results if result['num_classes']),
            int(max(preds.max(), targets.max())) + 1)
        for name, grades in (('predicted', preds), ('true', targets)):
            if grades.min() < 0 or grades.max() >= num_classes:
                raise ValueError(f'QuadraticWeightedKappa: {name} grades must lie in '
                                 f'[0, {num_classes}); got {grades.min()}..{grades.max()}')
        with warnings.catch_warnings():  # scikit-learn's own warning: ours is clearer
            warnings.simplefilter('ignore', UndefinedMetricWarning)
            kappa = float(cohen_kappa_score(targets, preds, weights='quadratic',
                                            labels=list(range(num_classes))))
        if math.isnan(kappa):
            MMLogger.get_current_instance().warning(
                'QuadraticWeightedKappa: undefined (all predictions and targets in one grade)')
        return {'qwk': kappa * 100}
