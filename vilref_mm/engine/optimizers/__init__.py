"""Optimizer wrappers and their constructors: :class:`AutocastOptimWrapper` (MMEngine's
``OPTIM_WRAPPERS``) and the layer-decay constructor (mmseg's
``OPTIM_WRAPPER_CONSTRUCTORS``)."""
from .autocast_optim_wrapper import AutocastOptimWrapper
from .layer_decay import BackboneLayerDecayOptimWrapperConstructor

__all__ = ['AutocastOptimWrapper', 'BackboneLayerDecayOptimWrapperConstructor']
