"""vilref_mm: ViLReF as an OpenMMLab plugin.

Importing it registers the models, losses, hooks, datasets, transforms and metrics in
mmpretrain's registries, the image backbones also in mmsegmentation's, and the runner and the
FlexibleRunner strategies in MMEngine's, and the model zoo's configs in mmpretrain's
``ModelHub`` (``get_model('<config name>')``). MMEngine's checkpoint loader stays as it is: the
runner, the strategies and the models read under vilref_mm's trust rule only while they load
(:mod:`vilref_mm.utils.checkpoint`).
"""
from . import datasets, engine, evaluation, labeling, models, utils  # noqa: F401  (registration)
from .utils.model_zoo import register_model_zoo
from .version import __version__

register_model_zoo()

__all__ = ['__version__']
