"""Hooks of ViLReF's training: momentum (EMA) update and memory-queue enqueue (batch
expansion), and the logit-scale clamp; all act after optimizer steps."""
import math
from typing import List, Optional, Tuple

import torch
from mmengine.dist import get_world_size
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmpretrain.registry import HOOKS

from vilref_mm.utils.distributed import batch_size_per_process


def _unwrap(runner):
    model = runner.model
    return model.module if is_model_wrapper(model) else model


def optimizer_stepped(runner) -> bool:
    """Whether the training iteration that just ran stepped the optimizer.

    With ``optim_wrapper.accumulative_counts = A`` the optimizer steps on every A-th
    iteration and on the last one (MMEngine's ``OptimWrapper.should_update``, read after the
    iteration's ``update_params``); without accumulation, on every iteration.
    """
    return runner.optim_wrapper.should_update()


def optimizer_steps(runner) -> int:
    """Optimizer steps taken so far, the one of the iteration that just ran included."""
    wrapper = runner.optim_wrapper
    # OptimWrapper keeps accumulative_counts private; it has no public accessor.
    return math.ceil(wrapper.inner_count / wrapper._accumulative_counts)


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
    """Update ViLReF's momentum encoders after every ``interval`` optimizer steps:
    ``theta_m <- m * theta_m + (1 - m) * theta``.

    With gradient accumulation (``optim_wrapper.accumulative_counts = A``) the online towers
    change only on every A-th iteration, so the update follows the optimizer steps
    (:func:`optimizer_stepped`): m per optimizer step, as method.md defines it, not m^A.

    Args:
        momentum (float): The momentum m. Defaults to 0.995.
        end_momentum (float, optional): When given, m follows a cosine schedule from
            ``momentum`` at the first iteration to ``end_momentum`` at the last.
        interval (int): Update every ``interval`` optimizer steps. Defaults to 1.
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
        if optimizer_stepped(runner) and optimizer_steps(runner) % self.interval == 0:
            _unwrap(runner).momentum_update(self.momentum_at(runner.iter, runner.max_iters))


@HOOKS.register_module()
class MemoryQueueHook(Hook):
    """Enqueue the momentum features and labels of each optimizer step's batch, gathered from
    all ranks so that every rank holds the same queue.

    With gradient accumulation (``optim_wrapper.accumulative_counts = A``) the batch of an
    optimizer step is its A micro-batches: the hook keeps each micro-batch's momentum
    features and enqueues all of them, in order and each once, after the step. Every
    micro-batch of a step is thus contrasted with the same queue (the accumulated gradient
    is that of one loss against one candidate set, as without accumulation), and the queue
    receives every sample of the step.

    Args:
        warmup_iters (int): Iterations to train before the queue starts filling (the first
            ``warmup_iters`` batches are neither encoded by the momentum towers nor
            enqueued). Defaults to 0.
    """
    priority = 'NORMAL'

    def __init__(self, warmup_iters: int = 0) -> None:
        self.warmup_iters = warmup_iters
        self._micro_batches: List[Tuple[torch.Tensor, ...]] = []

    def before_train(self, runner) -> None:
        _check_batch_expansion(runner, self)
        self._micro_batches.clear()
        queue = _unwrap(runner).memory_queue
        batch = batch_size_per_process(runner.train_dataloader)
        if batch is None:
            raise ValueError('MemoryQueueHook: the train dataloader has no batch size (neither '
                             'batch_size nor a batch sampler with one); the queue size must be '
                             'a multiple of the global batch')
        global_batch = batch * get_world_size()
        if queue.size % global_batch:
            raise ValueError(
                f'MemoryQueueHook: the queue size {queue.size} is not a multiple of the global '
                f'batch {global_batch} (batch size {batch} x {get_world_size()} processes); '
                'choose model.queue_size accordingly')

    def before_train_iter(self, runner, batch_idx: int, data_batch=None) -> None:
        # No momentum forward pass while the queue warms up.
        _unwrap(runner).encode_momentum_batch = runner.iter >= self.warmup_iters

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        model = _unwrap(runner)
        # ViLReF holds the momentum features of its last batch only (None while the queue
        # warms up): keep them until the optimizer steps.
        micro_batch = model.pop_momentum_batch()
        if micro_batch is not None:
            self._micro_batches.append(micro_batch)
        if not optimizer_stepped(runner):
            return
        for micro_batch in self._micro_batches:
            model.enqueue_momentum_batch(micro_batch)
        self._micro_batches.clear()


@HOOKS.register_module()
class LogitScaleClampHook(Hook):
    """Clamp ViLReF's ``logit_scale`` to [0, ``max_logit_scale``] after every optimizer step
    (method.md), so that no checkpoint holds a value beyond the bound.

    ``ViLReF.loss`` also clamps before each forward pass, but the last step's update would
    stay unclamped until then. A hook rather than the model's ``train_step``: under DDP the
    wrapper's ``train_step`` runs instead of the model's. Also for models without a memory
    queue.
    """
    priority = 'NORMAL'  # before CheckpointHook (VERY_LOW) saves

    def before_train(self, runner) -> None:
        if not hasattr(_unwrap(runner), 'clamp_logit_scale'):
            raise TypeError(f'LogitScaleClampHook needs a model with clamp_logit_scale '
                            f'(ViLReF), got {type(_unwrap(runner)).__name__}')

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        if optimizer_stepped(runner):
            _unwrap(runner).clamp_logit_scale()
