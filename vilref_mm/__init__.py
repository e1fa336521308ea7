"""vilref_mm: ViLReF as an OpenMMLab plugin.

Importing it registers the models, losses, hooks, datasets, transforms and metrics in
mmpretrain's registries, the image backbones also in mmsegmentation's, and the runner and the
FlexibleRunner strategies in MMEngine's. MMEngine's checkpoint loader stays as it is: the
runner, the strategies and the models read under vilref_mm's trust rule only while they load
(:mod:`vilref_mm.utils.checkpoint`).
"""
from . import datasets, engine, evaluation, labeling, models, utils  # noqa: F401  (registration)
from .version import __version__

__all__ = ['__version__']
