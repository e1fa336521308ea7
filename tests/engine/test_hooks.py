"""MomentumUpdateHook, MemoryQueueHook and LogitScaleClampHook: schedule, checks, gradient
accumulation, and their effect on a model."""
from types import SimpleNamespace

import pytest
import torch
from mmengine.optim import OptimWrapper
from torch.utils.data import BatchSampler, DataLoader, SequentialSampler

import vilref_mm  # noqa: F401  registers the hooks
from mmpretrain.registry import HOOKS
from vilref_mm.engine import LogitScaleClampHook, MemoryQueueHook, MomentumUpdateHook


class FakeModel:
    """Records the calls the hooks make; ``forward`` stands for ViLReF's loss pass, which
    keeps the batch's momentum features in ``_momentum_batch`` when encoding."""

    def __init__(self, queue_size: int = 8):
        self.memory_queue = SimpleNamespace(size=queue_size)
        self.encode_momentum_batch = True
        self._momentum_batch = None
        self.calls = []

    def forward(self, iteration):
        if self.encode_momentum_batch:
            self._momentum_batch = (f'batch {iteration}', )

    def momentum_update(self, momentum):
        self.calls.append(('momentum', momentum))

    def pop_momentum_batch(self):
        batch, self._momentum_batch = self._momentum_batch, None
        return batch

    def enqueue_momentum_batch(self, batch=None):
        batch = self.pop_momentum_batch() if batch is None else batch
        if batch is not None:
            self.calls.append(('enqueue', batch[0]))

    def clamp_logit_scale(self):
        self.calls.append(('clamp', ))


def optim_wrapper(accumulative_counts=1, max_iters=10, start=0):
    """MMEngine's OptimWrapper as the runner sets it up (its inner count at ``start``)."""
    weight = torch.nn.Parameter(torch.zeros(1))
    wrapper = OptimWrapper(torch.optim.SGD([weight], lr=0.),
                           accumulative_counts=accumulative_counts)
    wrapper.initialize_count_status(torch.nn.Linear(1, 1), start, max_iters)
    wrapper.weight = weight
    return wrapper


def fake_runner(model, iteration=0, max_iters=10, batch_size=4, hooks=None, wrapper=None):
    hooks = [MomentumUpdateHook(), MemoryQueueHook()] if hooks is None else hooks
    return SimpleNamespace(model=model, iter=iteration, max_iters=max_iters, hooks=hooks,
                           train_dataloader=SimpleNamespace(batch_size=batch_size),
                           optim_wrapper=wrapper or optim_wrapper(max_iters=max_iters))


def train(model, hooks, max_iters, accumulative_counts=1):
    """Run the hooks around ``max_iters`` iterations of a training loop: before_train_iter,
    the forward pass, the optimizer wrapper's update_params, after_train_iter."""
    wrapper = optim_wrapper(accumulative_counts, max_iters)
    # both batch-expansion hooks registered, as their checks require
    runner = fake_runner(model, max_iters=max_iters, wrapper=wrapper,
                         hooks=hooks + [MomentumUpdateHook(), MemoryQueueHook()])
    for hook in hooks:
        hook.before_train(runner)
    for iteration in range(max_iters):
        runner.iter = iteration
        for hook in hooks:
            hook.before_train_iter(runner, batch_idx=iteration)
        model.forward(iteration)
        model.calls.append(('iteration', iteration))
        wrapper.update_params(wrapper.weight.sum())
        for hook in hooks:
            hook.after_train_iter(runner, batch_idx=iteration)
    return model.calls


def test_hooks_are_registered():
    assert isinstance(HOOKS.build(dict(type='MomentumUpdateHook')), MomentumUpdateHook)
    assert isinstance(HOOKS.build(dict(type='MemoryQueueHook')), MemoryQueueHook)
    assert isinstance(HOOKS.build(dict(type='LogitScaleClampHook')), LogitScaleClampHook)


def test_constant_and_cosine_momentum():
    assert MomentumUpdateHook(0.99).momentum_at(5, 10) == 0.99
    hook = MomentumUpdateHook(momentum=0.99, end_momentum=1.0)
    assert hook.momentum_at(0, 11) == pytest.approx(0.99)
    assert hook.momentum_at(5, 11) == pytest.approx(0.995)
    assert hook.momentum_at(10, 11) == pytest.approx(1.0)
    values = [hook.momentum_at(i, 11) for i in range(11)]
    assert values == sorted(values)


def test_momentum_hook_updates_every_interval():
    calls = train(FakeModel(), [MomentumUpdateHook(momentum=0.9, interval=2)], max_iters=4)
    assert calls == [('iteration', 0), ('iteration', 1), ('momentum', 0.9), ('iteration', 2),
                     ('iteration', 3), ('momentum', 0.9)]


def test_momentum_hook_follows_optimizer_steps():
    # accumulative_counts=2 over 5 iterations: the optimizer steps after iterations 1, 3 and
    # (the remainder) 4; the EMA runs once per step, not once per micro-batch.
    calls = train(FakeModel(), [MomentumUpdateHook(momentum=0.9)], max_iters=5,
                  accumulative_counts=2)
    assert calls == [('iteration', 0), ('iteration', 1), ('momentum', 0.9), ('iteration', 2),
                     ('iteration', 3), ('momentum', 0.9), ('iteration', 4), ('momentum', 0.9)]
    # interval counts optimizer steps: the 2nd and 4th steps, after iterations 3 and 7
    calls = train(FakeModel(), [MomentumUpdateHook(momentum=0.9, interval=2)], max_iters=8,
                  accumulative_counts=2)
    assert [calls[i - 1] for i, call in enumerate(calls) if call[0] == 'momentum'] == [
        ('iteration', 3), ('iteration', 7)]


def test_momentum_hook_rejects_bad_momentum():
    with pytest.raises(ValueError, match='momentum'):
        MomentumUpdateHook(momentum=1.5)


def test_queue_hook_warms_up_then_enqueues():
    calls = train(FakeModel(), [MomentumUpdateHook(), MemoryQueueHook(warmup_iters=2)],
                  max_iters=4)
    # the momentum towers encode (and the queue receives) only the batches after warm-up
    assert [call for call in calls if call[0] == 'enqueue'] == [('enqueue', 'batch 2'),
                                                               ('enqueue', 'batch 3')]
    assert calls.index(('enqueue', 'batch 2')) == calls.index(('iteration', 2)) + 2


def test_queue_hook_enqueues_every_micro_batch_once_after_the_step():
    calls = train(FakeModel(), [MomentumUpdateHook(), MemoryQueueHook()], max_iters=5,
                  accumulative_counts=2)
    assert calls == [
        ('iteration', 0), ('iteration', 1), ('momentum', 0.995),
        ('enqueue', 'batch 0'), ('enqueue', 'batch 1'),
        ('iteration', 2), ('iteration', 3), ('momentum', 0.995),
        ('enqueue', 'batch 2'), ('enqueue', 'batch 3'),
        ('iteration', 4), ('momentum', 0.995), ('enqueue', 'batch 4')]


def test_queue_size_must_be_a_multiple_of_the_global_batch():
    hook = MemoryQueueHook()
    hook.before_train(fake_runner(FakeModel(queue_size=8), batch_size=4))
    with pytest.raises(ValueError, match='not a multiple of the global batch 3'):
        hook.before_train(fake_runner(FakeModel(queue_size=8), batch_size=3))


def test_queue_hook_reads_the_batch_size_of_a_batch_sampler():
    hook = MemoryQueueHook()
    loader = DataLoader(range(12), batch_sampler=BatchSampler(SequentialSampler(range(12)), 3,
                                                              drop_last=True))
    assert loader.batch_size is None
    runner = fake_runner(FakeModel(queue_size=8))
    runner.train_dataloader = loader
    with pytest.raises(ValueError, match=r'global batch 3 \(batch size 3 x 1 processes\)'):
        hook.before_train(runner)
    runner.model.memory_queue.size = 9
    hook.before_train(runner)


def test_clamp_hook_clamps_after_each_optimizer_step():
    calls = train(FakeModel(), [LogitScaleClampHook()], max_iters=3, accumulative_counts=2)
    assert calls == [('iteration', 0), ('iteration', 1), ('clamp', ), ('iteration', 2),
                     ('clamp', )]
    with pytest.raises(TypeError, match='LogitScaleClampHook needs a model with '
                                        'clamp_logit_scale'):
        LogitScaleClampHook().before_train(fake_runner(SimpleNamespace()))


@pytest.mark.parametrize('hook_type', [MomentumUpdateHook, MemoryQueueHook])
def test_hooks_need_a_queue_and_each_other(hook_type):
    hook = hook_type()
    model = FakeModel()
    hook.before_train(fake_runner(model))
    other = MemoryQueueHook() if hook_type is MomentumUpdateHook else MomentumUpdateHook()
    with pytest.raises(ValueError, match=f'{type(other).__name__} is missing'):
        hook.before_train(fake_runner(model, hooks=[hook]))
    model.memory_queue = None
    with pytest.raises(TypeError, match=f'{hook_type.__name__} needs .* queue_size > 0'):
        hook.before_train(fake_runner(model, hooks=[hook, other]))
