from .vilref_hooks import MemoryQueueHook, MomentumUpdateHook

__all__ = ['MomentumUpdateHook', 'MemoryQueueHook']
