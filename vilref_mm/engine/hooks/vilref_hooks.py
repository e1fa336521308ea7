"""Hooks of ViLReF's batch expansion: momentum (EMA) update and memory-queue enqueue."""
import math
from typing import Optional

from mmengine.dist import get_world_size
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmpretrain.registry import HOOKS


def _unwrap(runner):
    model = runner.model
    return model.module if is_model_wrapper(model) else model


def _check_batch_expansion(runner, hook: Hook) -> None:
    """The model has momentum towers and a queue, and both hooks are registered."""
    name = type(hook).__name__
    if getattr(_unwrap(runner), 'memory_queue', None) is None:
        raise TypeError(f'{name} needs a model with momentum towers and a memory queue '
                        '(ViLReF with queue_size > 0); remove MomentumUpdateHook and '
                        'MemoryQueueHook from custom_hooks for plain WSCL/CLIP')
    registered = {type(other) for other in runner.hooks}
    missing = [pair.__name__ for pair in (MomentumUpdateHook, MemoryQueueHook)
               if pair not in registered]
    if missing:
        raise ValueError(f'{name}: a model with a memory queue needs both MomentumUpdateHook '
                         f'and MemoryQueueHook in custom_hooks; {missing[0]} is missing')


@HOOKS.register_module()
class MomentumUpdateHook(Hook):
    """Update ViLReF's momentum encoders after every ``interval`` training iterations:
    ``theta_m <- m * theta_m + (1 - m) * theta``.

    Args:
        momentum (float): The momentum m. Defaults to 0.995.
        end_momentum (float, optional): When given, m follows a cosine schedule from
            ``momentum`` at the first iteration to ``end_momentum`` at the last.
        interval (int): Update every ``interval`` iterations. Defaults to 1.
    """
    priority = 'NORMAL'

    def __init__(self, momentum: float = 0.995, end_momentum: Optional[float] = None,
                 interval: int = 1) -> None:
        for name, value in (('momentum', momentum), ('end_momentum', end_momentum)):
            if value is not None and not 0.0 <= value <= 1.0:
                raise ValueError(f'MomentumUpdateHook: {name} must be in [0, 1], got {value}')
        self.momentum = momentum
        self.end_momentum = end_momentum
        self.interval = interval

    def momentum_at(self, iteration: int, max_iters: int) -> float:
        """The momentum after ``iteration`` (0-based) of ``max_iters``."""
        if self.end_momentum is None or max_iters <= 1:
            return self.momentum
        progress = min(iteration / (max_iters - 1), 1.0)
        return self.end_momentum - (self.end_momentum - self.momentum) * (
            math.cos(math.pi * progress) + 1) / 2

    def before_train(self, runner) -> None:
        _check_batch_expansion(runner, self)

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        if self.every_n_train_iters(runner, self.interval):
            _unwrap(runner).momentum_update(self.momentum_at(runner.iter, runner.max_iters))


@HOOKS.register_module()
class MemoryQueueHook(Hook):
    """After each training iteration, enqueue the step's momentum features and labels,
    gathered from all ranks so that every rank holds the same queue.

    Args:
        warmup_iters (int): Iterations to train before the queue starts filling (the first
            ``warmup_iters`` batches are neither encoded by the momentum towers nor
            enqueued). Defaults to 0.
    """
    priority = 'NORMAL'

    def __init__(self, warmup_iters: int = 0) -> None:
        self.warmup_iters = warmup_iters

    def before_train(self, runner) -> None:
        _check_batch_expansion(runner, self)
        queue = _unwrap(runner).memory_queue
        global_batch = runner.train_dataloader.batch_size * get_world_size()
        if queue.size % global_batch:
            raise ValueError(
                f'MemoryQueueHook: the queue size {queue.size} is not a multiple of the global '
                f'batch {global_batch} (batch_size {runner.train_dataloader.batch_size} x '
                f'{get_world_size()} processes); choose model.queue_size accordingly')

    def before_train_iter(self, runner, batch_idx: int, data_batch=None) -> None:
        # No momentum forward pass while the queue warms up.
        _unwrap(runner).encode_momentum_batch = runner.iter >= self.warmup_iters

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        _unwrap(runner).enqueue_momentum_batch()
