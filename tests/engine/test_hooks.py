"""MomentumUpdateHook and MemoryQueueHook: schedule, checks, and their effect on a model."""
from types import SimpleNamespace

import pytest

import vilref_mm  # noqa: F401  registers the hooks
from mmpretrain.registry import HOOKS
from vilref_mm.engine import MemoryQueueHook, MomentumUpdateHook


class FakeModel:
    """Records the calls the hooks make."""

    def __init__(self, queue_size: int = 8):
        self.memory_queue = SimpleNamespace(size=queue_size)
        self.encode_momentum_batch = True
        self.calls = []

    def momentum_update(self, momentum):
        self.calls.append(('momentum', momentum))

    def enqueue_momentum_batch(self):
        self.calls.append(('enqueue', self.encode_momentum_batch))


def fake_runner(model, iteration=0, max_iters=10, batch_size=4, hooks=None):
    hooks = [MomentumUpdateHook(), MemoryQueueHook()] if hooks is None else hooks
    return SimpleNamespace(model=model, iter=iteration, max_iters=max_iters, hooks=hooks,
                           train_dataloader=SimpleNamespace(batch_size=batch_size))


def test_hooks_are_registered():
    assert isinstance(HOOKS.build(dict(type='MomentumUpdateHook')), MomentumUpdateHook)
    assert isinstance(HOOKS.build(dict(type='MemoryQueueHook')), MemoryQueueHook)


def test_constant_and_cosine_momentum():
    assert MomentumUpdateHook(0.99).momentum_at(5, 10) == 0.99
    hook = MomentumUpdateHook(momentum=0.99, end_momentum=1.0)
    assert hook.momentum_at(0, 11) == pytest.approx(0.99)
    assert hook.momentum_at(5, 11) == pytest.approx(0.995)
    assert hook.momentum_at(10, 11) == pytest.approx(1.0)
    values = [hook.momentum_at(i, 11) for i in range(11)]
    assert values == sorted(values)


def test_momentum_hook_updates_every_interval():
    model = FakeModel()
    hook = MomentumUpdateHook(momentum=0.9, interval=2)
    for iteration in range(4):
        hook.after_train_iter(fake_runner(model, iteration), batch_idx=iteration)
    assert model.calls == [('momentum', 0.9), ('momentum', 0.9)]


def test_momentum_hook_rejects_bad_momentum():
    with pytest.raises(ValueError, match='momentum'):
        MomentumUpdateHook(momentum=1.5)


def test_queue_hook_warms_up_then_enqueues():
    model = FakeModel()
    hook = MemoryQueueHook(warmup_iters=2)
    for iteration in range(4):
        hook.before_train_iter(fake_runner(model, iteration), batch_idx=iteration)
        hook.after_train_iter(fake_runner(model, iteration), batch_idx=iteration)
    # the momentum towers encode (and the queue receives) only the batches after warm-up
    assert model.calls == [('enqueue', False), ('enqueue', False), ('enqueue', True),
                           ('enqueue', True)]


def test_queue_size_must_be_a_multiple_of_the_global_batch():
    hook = MemoryQueueHook()
    hook.before_train(fake_runner(FakeModel(queue_size=8), batch_size=4))
    with pytest.raises(ValueError, match='not a multiple of the global batch 3'):
        hook.before_train(fake_runner(FakeModel(queue_size=8), batch_size=3))


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
