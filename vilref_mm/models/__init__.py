"""ViLReF's models; importing this package registers them in mmpretrain's registries (the
image backbones also in mmsegmentation's)."""
from . import backbones, losses, text
from .backbones import *  # noqa: F401,F403
from .convert import (CheckpointConversionError, ConvertedCheckpoint, convert_checkpoint,
                      convert_release_state_dict, read_release_state_dict)
from .data_preprocessor import ViLReFDataPreprocessor
from .losses import *  # noqa: F401,F403
from .memory import MemoryQueue
from .text import *  # noqa: F401,F403
from .vilref import ViLReF

__all__ = backbones.__all__ + losses.__all__ + text.__all__ + [
    'ViLReF', 'ViLReFDataPreprocessor', 'MemoryQueue', 'CheckpointConversionError',
    'ConvertedCheckpoint', 'convert_checkpoint', 'convert_release_state_dict',
    'read_release_state_dict'
]
