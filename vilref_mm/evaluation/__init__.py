"""Zero-shot classification, downstream and segmentation metrics; importing it registers the
metrics in mmpretrain's ``METRICS`` and :class:`PerClassIoUMetric` in mmseg's."""
from .metrics import AUROC, QuadraticWeightedKappa
from .segmentation_metric import PerClassIoUMetric
from .zero_shot import (DEFAULT_PROMPTS, PromptError, ZeroShotClassifier, build_prototypes,
                        load_prompt_file, resolve_class_names, resolve_templates,
                        set_predictions)

__all__ = [
    'AUROC', 'QuadraticWeightedKappa', 'PerClassIoUMetric',
    'DEFAULT_PROMPTS', 'PromptError', 'ZeroShotClassifier', 'build_prototypes',
    'load_prompt_file', 'resolve_class_names', 'resolve_templates', 'set_predictions'
]
