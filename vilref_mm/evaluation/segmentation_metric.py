"""mmseg's ``IoUMetric`` with the per-class values in the metrics dict."""
from typing import Dict

import numpy as np
from mmseg.evaluation import IoUMetric
from mmseg.registry import METRICS


@METRICS.register_module()
class PerClassIoUMetric(IoUMetric):
    """mmseg's :class:`~mmseg.evaluation.IoUMetric` that also returns every class's value.

    Besides ``aAcc`` and the means (``mIoU``, ``mDice``, ...), the metrics dict holds
    ``{metric}.{class}`` for each per-class metric of ``iou_metrics`` (``IoU`` and ``Acc``
    for 'mIoU', ``Dice`` and ``Acc`` for 'mDice', ``Fscore``, ``Precision`` and ``Recall``
    for 'mFscore'), e.g. ``Dice.vessel``: percentages rounded to 2 decimals as mmseg's
    means, NaN for a class absent from both prediction and ground truth (unless
    ``nan_to_num``). Class names lose surrounding spaces (mmseg's REFUGE has ' Optic Cup').
    Takes the arguments of ``IoUMetric``.
    """

    def compute_metrics(self, results: list) -> Dict[str, float]:
        metrics = super().compute_metrics(results)
        if self.format_only:
            return metrics
        totals = [sum(areas) for areas in zip(*results)]
        per_class = self.total_area_to_metrics(*totals, self.metrics, self.nan_to_num,
                                               self.beta)
        per_class.pop('aAcc')
        for name, values in per_class.items():
            for class_name, value in zip(self.dataset_meta['classes'], values):
                metrics[f'{name}.{class_name.strip()}'] = float(np.round(value * 100, 2))
        return metrics
