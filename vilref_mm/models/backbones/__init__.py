"""ViLReF image encoders, registered in mmpretrain's and mmsegmentation's ``MODELS``."""
from .convert import VisualWeights, convert_visual_weights
from .modified_resnet import ViLReFModifiedResNet
from .vit import ViLReFViT

__all__ = ['ViLReFViT', 'ViLReFModifiedResNet', 'VisualWeights', 'convert_visual_weights']
