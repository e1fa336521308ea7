"""Optimizer wrapper constructors, registered in mmsegmentation's ``OPTIM_WRAPPER_CONSTRUCTORS``."""
from .layer_decay import BackboneLayerDecayOptimWrapperConstructor

__all__ = ['BackboneLayerDecayOptimWrapperConstructor']
