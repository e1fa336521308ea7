"""Optimizer wrapper constructors, registered in mmseg's ``OPTIM_WRAPPER_CONSTRUCTORS``."""
from .layer_decay import BackboneLayerDecayOptimWrapperConstructor

__all__ = ['BackboneLayerDecayOptimWrapperConstructor']
