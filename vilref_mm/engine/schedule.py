"""Edits of a config's training schedule: fit it to another number of iterations, train
without the validation loop, or in bf16."""
from typing import Dict

from mmengine.config import Config

#: Parameter schedulers that ramp from a start to an end factor (warm-ups): over ``n``
#: iterations, MMEngine's ``LinearLR`` reaches its end factor at the ``n``-th, so it needs two.
WARM_UP_SCHEDULERS = ('LinearLR', 'LinearMomentum', 'LinearParamScheduler')


def _scale(value: int, factor: float, at_least: int = 0) -> int:
    """``value * factor`` rounded, at least ``at_least``."""
    return max(round(value * factor), at_least)


def _is_warm_up(scheduler: dict) -> bool:
    """Whether a scheduler config is one of :data:`WARM_UP_SCHEDULERS` (by name or class)."""
    scheduler_type = scheduler.get('type')
    return getattr(scheduler_type, '__name__', scheduler_type) in WARM_UP_SCHEDULERS


def scale_schedule(cfg: Config, max_iters: int) -> None:
    """Run an iteration-based config for ``max_iters`` with its schedule scaled to fit.

    In place:

    - ``train_cfg.max_iters`` becomes ``max_iters``; ``val_interval`` (and ``val_begin``)
      scale with it, at least 1 and at most ``max_iters``: MMEngine's
      ``IterBasedTrainLoop`` validates at every interval and at the last iteration.
    - Every ``param_scheduler``'s ``begin`` and ``end`` scale by ``max_iters / old``;
      boundaries that were equal stay equal (a decay still starts where its warm-up ends).
      A scheduler keeps at least one iteration, a warm-up (:data:`WARM_UP_SCHEDULERS`) at
      least two: one at its start factor and one at its end factor; a ``LinearLR`` over one
      iteration would never leave its start factor, and later (chained) schedulers would
      scale that start value. Boundaries past the old ``max_iters`` stay past the new one,
      an unset ``end`` stays unset.
    - The checkpoint hook's ``interval`` scales (1 to ``max_iters``), the logger hook's
      ``interval`` is cut to ``max_iters``; a custom hook's ``warmup_iters`` (e.g.
      :class:`MemoryQueueHook`'s) scales, below ``max_iters`` where it was.

    Args:
        cfg (Config): A config with an ``IterBasedTrainLoop`` (``train_cfg.max_iters``) and
            schedulers by iteration (``by_epoch=False``).
        max_iters (int): Training iterations, at least 1.

    Raises:
        ValueError: If ``max_iters`` < 1, the config is epoch-based, or a scheduler counts
            epochs.
    """
    if max_iters < 1:
        raise ValueError(f'max_iters must be at least 1, got {max_iters}')
    source = cfg.filename or 'the config'
    train_cfg = cfg.get('train_cfg') or {}
    if 'max_iters' not in train_cfg:
        raise ValueError(
            f'{source}: train_cfg has no max_iters ({train_cfg}); scale_schedule needs '
            'an IterBasedTrainLoop')
    schedulers = cfg.get('param_scheduler') or []
    if isinstance(schedulers, dict):
        schedulers = [schedulers]
    for index, scheduler in enumerate(schedulers):
        if scheduler.get('by_epoch', True):
            raise ValueError(
                f'{source}: param_scheduler[{index}] ({scheduler.get("type")}) counts '
                'epochs; set by_epoch=False (begin and end in iterations) to scale it')

    factor = max_iters / train_cfg.max_iters
    train_cfg.max_iters = max_iters
    for key in ('val_interval', 'val_begin'):
        if key in train_cfg:
            train_cfg[key] = min(_scale(train_cfg[key], factor, at_least=1), max_iters)

    # Map each old boundary to a new one, in increasing order, so that equal boundaries
    # stay equal and every scheduler keeps its minimum length.
    boundaries: Dict[int, int] = {}
    old_boundaries = sorted({s.get('begin', 0) for s in schedulers}
                            | {s.end for s in schedulers if s.get('end') is not None})
    for old in old_boundaries:
        new = _scale(old, factor, at_least=max(boundaries.values(), default=0))
        for scheduler in schedulers:
            if scheduler.get('end') == old:
                min_length = 2 if _is_warm_up(scheduler) else 1
                new = max(new, boundaries[scheduler.get('begin', 0)] + min_length)
        boundaries[old] = new
    for scheduler in schedulers:
        scheduler.begin = boundaries[scheduler.get('begin', 0)]
        if scheduler.get('end') is not None:
            scheduler.end = boundaries[scheduler.end]

    hooks = cfg.get('default_hooks') or {}
    checkpoint, logger = hooks.get('checkpoint'), hooks.get('logger')
    if checkpoint is not None and checkpoint.get('interval', 0) > 0:
        checkpoint.interval = min(_scale(checkpoint.interval, factor, at_least=1), max_iters)
    if logger is not None and logger.get('interval', 0) > 0:
        logger.interval = min(logger.interval, max_iters)
    for hook in cfg.get('custom_hooks') or []:
        if hook.get('warmup_iters', 0) > 0:
            hook.warmup_iters = min(_scale(hook.warmup_iters, factor), max_iters - 1)


def disable_validation(cfg: Config) -> None:
    """Train without the validation loop (``tools/train.py --no-validate``), in place."""
    cfg.val_cfg = cfg.val_dataloader = cfg.val_evaluator = None


def enable_amp(cfg: Config) -> None:
    """Train with bf16 autocast (``tools/train.py --amp``), in place: the optimizer wrapper
    becomes :class:`~vilref_mm.engine.optimizers.AutocastOptimWrapper` (no loss scaling,
    no per-step device synchronisation), keeping the optimizer and its options."""
    options = {key: value for key, value in cfg.optim_wrapper.items()
               if key not in ('type', 'dtype', 'loss_scale')}
    cfg.optim_wrapper = dict(options, type='AutocastOptimWrapper', dtype='bfloat16')
