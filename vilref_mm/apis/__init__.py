"""High-level entry points: run the plugin's workflows from Python.

The inference API is exported here: :class:`ZeroShotInferencer` and
:class:`ViLReFFeatureExtractor` (mmpretrain inferencers, also registered in MMEngine's
``INFERENCERS``), and what ViLReF adds to mmpretrain's ``get_model`` and inferencers.
Segmentation fine-tuning (:mod:`vilref_mm.apis.segmentation`) is imported from its submodule.
"""
from .base import UnreadableImageError, collect_images, image_names, init_model
from .feature_extractor import ViLReFFeatureExtractor
from .inference import retrieve, zero_shot_classifier
from .zero_shot_inferencer import ZeroShotInferencer

__all__ = [
    'ZeroShotInferencer', 'ViLReFFeatureExtractor', 'init_model', 'zero_shot_classifier',
    'retrieve', 'collect_images', 'image_names', 'UnreadableImageError'
]
