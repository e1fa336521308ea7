"""Layer-wise learning-rate decay for segmentors whose backbone knows its layer depths."""
from functools import partial
from typing import Callable, List, Optional

from mmpretrain.engine.optimizers import LearningRateDecayOptimWrapperConstructor
from mmseg.registry import OPTIM_WRAPPER_CONSTRUCTORS
from torch import nn


@OPTIM_WRAPPER_CONSTRUCTORS.register_module()
class BackboneLayerDecayOptimWrapperConstructor(LearningRateDecayOptimWrapperConstructor):
    """mmpretrain's layer-wise learning-rate decay for mmsegmentation models.

    mmpretrain's :class:`LearningRateDecayOptimWrapperConstructor` asks the
    model for ``get_layer_depth``, which mmpretrain classifiers have and
    mmsegmentation segmentors do not; mmsegmentation's own
    ``LearningRateDecayOptimizerConstructor`` only knows BEiT, MAE and
    ConvNeXt. This constructor takes the depths from the segmentor's
    backbone (e.g. :class:`~vilref_mm.models.backbones.ViLReFViT`, via
    mmpretrain's ``VisionTransformer.get_layer_depth``): ``cls_token``,
    ``pos_embed`` and ``patch_embed`` have depth 0, block ``i`` depth
    ``i + 1``, everything else (the backbone's remaining norms, neck, heads)
    the top depth, whose learning rate is the base one. A parameter at depth
    ``d`` of ``n`` gets ``lr * layer_decay_rate ** (n - d - 1)``.

    ``paramwise_cfg`` takes ``layer_decay_rate``, ``norm_decay_mult``,
    ``bias_decay_mult``, ``flat_decay_mult`` and ``custom_keys`` (weight
    decay only) as in mmpretrain.

    Example:
        >>> optim_wrapper = dict(
        ...     optimizer=dict(type='AdamW', lr=1e-4, weight_decay=0.05),
        ...     constructor='BackboneLayerDecayOptimWrapperConstructor',
        ...     paramwise_cfg=dict(layer_decay_rate=0.65, norm_decay_mult=0.,
        ...                        flat_decay_mult=0.,
        ...                        custom_keys={'.cls_token': dict(decay_mult=0.),
        ...                                     '.pos_embed': dict(decay_mult=0.)}))
    """

    def add_params(self,
                   params: List[dict],
                   module: nn.Module,
                   prefix: str = '',
                   get_layer_depth: Optional[Callable] = None,
                   **kwargs) -> None:
        """Add the parameters of ``module`` to ``params``, one group each.

        Args:
            params (list[dict]): Parameter groups, extended in place.
            module (nn.Module): The segmentor (at the top level of the
                recursion) or one of its submodules.
            prefix (str): Name prefix of ``module``'s parameters.
            get_layer_depth (Callable, optional): Maps a parameter name to
                ``(depth, number of depths)``. Defaults to the model's own
                ``get_layer_depth``, else its backbone's.
        """
        if get_layer_depth is None and not hasattr(module, 'get_layer_depth'):
            backbone = getattr(module, 'backbone', None)
            if not hasattr(backbone, 'get_layer_depth'):
                raise TypeError(
                    f'{type(self).__name__} needs a model or backbone with a '
                    f'`get_layer_depth(param_name, prefix)` method, but '
                    f'{type(module).__name__} with backbone {type(backbone).__name__} has '
                    'none; use the default constructor (remove `constructor` and '
                    '`layer_decay_rate` from optim_wrapper) for this backbone')
            get_layer_depth = partial(backbone.get_layer_depth, prefix='backbone.')
        super().add_params(params, module, prefix, get_layer_depth=get_layer_depth, **kwargs)
