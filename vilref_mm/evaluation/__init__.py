"""Zero-shot classification and downstream metrics; importing it registers the metrics in
mmpretrain's ``METRICS``."""
from .metrics import AUROC, QuadraticWeightedKappa
from .zero_shot import (DEFAULT_PROMPTS, PromptError, ZeroShotClassifier, build_prototypes,
                        load_prompt_file, resolve_class_names, resolve_templates,
                        set_predictions)

__all__ = [
    'AUROC', 'QuadraticWeightedKappa',
    'DEFAULT_PROMPTS', 'PromptError', 'ZeroShotClassifier', 'build_prototypes',
    'load_prompt_file', 'resolve_class_names', 'resolve_templates', 'set_predictions'
]
