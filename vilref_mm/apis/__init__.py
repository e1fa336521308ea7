"""High-level entry points: run the plugin's workflows from Python.

The inference API is exported here; the demo (:mod:`vilref_mm.apis.demo`) and segmentation
fine-tuning (:mod:`vilref_mm.apis.segmentation`) are imported from their submodules.
"""
from .inference import (UnreadableImageError, ZeroShotResult, collect_images,
                        extract_image_features, extract_text_features, format_ranking,
                        image_names, init_model, retrieve, save_features, select_prompts,
                        zero_shot, zero_shot_classifier)

__all__ = [
    'init_model', 'zero_shot', 'zero_shot_classifier', 'ZeroShotResult', 'format_ranking',
    'select_prompts', 'extract_image_features', 'extract_text_features', 'retrieve',
    'collect_images', 'image_names', 'save_features', 'UnreadableImageError'
]
