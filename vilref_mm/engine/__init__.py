from . import optimizers  # noqa: F401  (registers the layer-decay constructor in mmseg)
from .hooks import LogitScaleClampHook, MemoryQueueHook, MomentumUpdateHook
from .runner import ViLReFRunner, build_runner
from .schedule import disable_validation, enable_amp, scale_schedule
from .strategies import (ViLReFDDPStrategy, ViLReFFlexibleRunner, ViLReFFSDPStrategy,
                         ViLReFSingleDeviceStrategy)

__all__ = [
    'ViLReFRunner', 'build_runner', 'disable_validation', 'enable_amp', 'scale_schedule',
    'MomentumUpdateHook', 'MemoryQueueHook', 'LogitScaleClampHook',
    'ViLReFFlexibleRunner', 'ViLReFSingleDeviceStrategy', 'ViLReFDDPStrategy',
    'ViLReFFSDPStrategy'
]
