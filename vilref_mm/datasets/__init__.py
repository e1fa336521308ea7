"""Datasets of vilref_mm: image-report manifests and LMDBs, their transforms, the synthetic set.

Importing it registers the datasets, samplers and transforms in mmpretrain's registries. The
synthetic generator (:mod:`vilref_mm.datasets.synthetic`) registers nothing and is imported
only where it is used, not in every dataloader worker.
"""
from . import downstream, few_shot  # noqa: F401
from .image_report import BaseImageReportDataset, ImageReportDataset
from .image_report_lmdb import ImageReportLMDBDataset, write_image_report_lmdb
from .presize import presize_image
from .records import RecordError
from .samplers import SampleIndex, SeededDefaultSampler, SeededInfiniteSampler
from .label_cache import report_labels
from .transforms import LoadImageFromRecord, PackImageReportInputs, TokenizeReport

__all__ = [
    'BaseImageReportDataset', 'ImageReportDataset', 'ImageReportLMDBDataset', 'RecordError',
    'report_labels', 'write_image_report_lmdb', 'presize_image', 'LoadImageFromRecord',
    'TokenizeReport', 'PackImageReportInputs', 'SampleIndex', 'SeededDefaultSampler',
    'SeededInfiniteSampler'
]
