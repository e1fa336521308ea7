"""Synthetic colour-fundus images with Chinese reports: the project's built-in dataset.

See ``docs/synthetic_data.md``. ``generate_synthetic_fundus`` writes the whole dataset;
``make_sample`` gives one sample (image, masks, report, ground truth) from ``(seed, split,
index)``; ``sample_case`` / ``draw_fundus`` / ``write_report`` are its three steps.
"""
from .cases import FundusCase, cup_enlargement_value, sample_case
from .fundus import FundusImage, draw_fundus
from .generator import (GENERATOR_VERSION, SPLITS, SyntheticSample, generate_synthetic_fundus,
                        iter_samples, label_classes, make_sample)
from .reports import write_report

__all__ = [
    'FundusCase', 'FundusImage', 'SyntheticSample', 'GENERATOR_VERSION', 'SPLITS',
    'cup_enlargement_value', 'draw_fundus', 'generate_synthetic_fundus', 'iter_samples',
    'label_classes', 'make_sample', 'sample_case', 'write_report'
]
