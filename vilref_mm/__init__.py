"""vilref_mm: ViLReF as an OpenMMLab plugin.

Importing it registers the models, losses, hooks, datasets, transforms and metrics in
mmpretrain's registries, the image backbones also in mmsegmentation's, and the runner and the
safe checkpoint loader in MMEngine.
"""
from . import datasets, engine, evaluation, labeling, models, utils  # noqa: F401  (registration)
from .version import __version__

__all__ = ['__version__']
