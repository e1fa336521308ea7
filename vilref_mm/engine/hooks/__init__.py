from .checkpoint_hook import DurableCheckpointHook
from .vilref_hooks import LogitScaleClampHook, MemoryQueueHook, MomentumUpdateHook

__all__ = [
    'DurableCheckpointHook', 'MomentumUpdateHook', 'MemoryQueueHook', 'LogitScaleClampHook'
]
