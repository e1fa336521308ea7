from .checkpoint_hook import DurableCheckpointHook
from .vilref_hooks import MemoryQueueHook, MomentumUpdateHook

__all__ = ['DurableCheckpointHook', 'MomentumUpdateHook', 'MemoryQueueHook']
