"""Gradient accumulation through the runner (``optim_wrapper.accumulative_counts=2``): the
momentum towers' EMA runs once per optimizer step with momentum m, the queue receives every
micro-batch's momentum features once, in order, after each step; and ``logit_scale`` is
clamped after every optimizer step, so that no checkpoint holds a value beyond its bounds."""
import math
from pathlib import Path
from typing import Dict, List

import pytest
import torch
from mmengine.config import Config
from mmengine.hooks import Hook

from vilref_mm.datasets.synthetic import generate_synthetic_fundus
from vilref_mm.engine import build_runner, disable_validation
from vilref_mm.utils.checkpoint import load_checkpoint_file

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / 'tests' / 'data' / 'configs' / 'tiny_vilref.py'
MOMENTUM = 0.5  # far from 1, so that one EMA update more or less shows
ITERS, ACCUMULATE, BATCH = 4, 2, 4


@pytest.fixture(scope='module')
def data_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp('synthetic')
    generate_synthetic_fundus(root, num_train=24, num_val=0, num_test=0, size=32, seed=1)
    return root


def tiny_config(work_dir: Path, data_root: Path, **options) -> Config:
    cfg = Config.fromfile(str(CONFIG))
    disable_validation(cfg)
    cfg.merge_from_dict({
        'work_dir': str(work_dir), 'experiment_name': f'{work_dir.parent.name}_{work_dir.name}',
        'train_dataloader.dataset.data_root': f'{data_root}/',
        'train_dataloader.batch_size': BATCH, 'train_cfg.max_iters': ITERS,
        'optim_wrapper.optimizer.lr': 1e-2, **options})
    return cfg


class MicroBatchRecorder(Hook):
    """Each iteration's momentum features, before MemoryQueueHook takes them."""
    priority = 'HIGHEST'

    def __init__(self) -> None:
        self.micro_batches: List[tuple] = []

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
        self.micro_batches.append(tuple(t.clone() for t in runner.model._momentum_batch))


class StateRecorder(Hook):
    """The weights when training starts; after the other hooks of each iteration: whether the
    optimizer stepped, the weights, the queue's fill."""
    priority = 'LOWEST'

    def __init__(self) -> None:
        self.initial: Dict[str, torch.Tensor] = {}
        self.records: List[Dict] = []

    def before_train(self, runner) -> None:
        self.initial = {key: value.clone() for key, value in runner.model.state_dict().items()}

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
        state = {key: value.clone() for key, value in runner.model.state_dict().items()}
        self.records.append(dict(state=state, fill=runner.model.memory_queue.fill,
                                 stepped=runner.optim_wrapper.should_update()))


def test_ema_and_queue_follow_optimizer_steps(tmp_path, data_root):
    cfg = tiny_config(tmp_path / 'accumulate', data_root,
                      **{'optim_wrapper.accumulative_counts': ACCUMULATE})
    cfg.custom_hooks[0].momentum = MOMENTUM
    runner = build_runner(cfg, quiet=True)
    micro_batches, states = MicroBatchRecorder(), StateRecorder()
    runner.register_hook(micro_batches)
    runner.register_hook(states)
    model = runner.model
    updates = []
    momentum_update = model.momentum_update
    model.momentum_update = lambda m: (updates.append(m), momentum_update(m))
    runner.train()
    initial = states.initial

    # One EMA update per optimizer step (ITERS / ACCUMULATE), each with momentum m:
    # theta_m <- m theta_m + (1 - m) theta, theta the online weights after the step.
    assert [record['stepped'] for record in states.records] == [False, True, False, True]
    # (the first, m = 0, is init_weights copying the online towers)
    assert updates == [0.] + [MOMENTUM] * (ITERS // ACCUMULATE)
    parameters = dict(model.named_parameters())
    pairs = {key: key[len('momentum_'):] for key in initial
             if key.startswith('momentum_') and key[len('momentum_'):] in parameters}
    assert any('image_encoder' in key for key in pairs) and any('text' in key for key in pairs)
    expected = {key: initial[online] for key, online in pairs.items()}
    for record in states.records:
        if record['stepped']:
            expected = {key: MOMENTUM * expected[key] + (1 - MOMENTUM) * record['state'][online]
                        for key, online in pairs.items()}
    final = model.state_dict()
    for key in pairs:
        torch.testing.assert_close(final[key], expected[key], msg=key)
    assert sum(not torch.allclose(final[key], initial[key]) for key in pairs) > len(pairs) / 2

    # Each micro-batch's momentum features reach the queue once, in order, after the step.
    assert [record['fill'] for record in states.records] == [0, 2 * BATCH, 2 * BATCH, 4 * BATCH]
    queue = model.memory_queue
    for stored, recorded in zip((queue.image_feats, queue.text_feats, queue.labels),
                                zip(*micro_batches.micro_batches)):
        assert torch.equal(stored, torch.cat(recorded))


@pytest.mark.parametrize('clamp', [False, True])
def test_checkpoints_hold_a_clamped_logit_scale(tmp_path, data_root, clamp):
    # From logit_scale = 0, the lower bound, each of these steps lowers it (the upper bound
    # is not reached in a few steps from scratch; the hook's clamp is two-sided).
    cfg = tiny_config(tmp_path / str(clamp), data_root, **{
        'model.queue_size': 0, 'model.init_logit_scale': 0., 'custom_hooks': [],
        'default_hooks.checkpoint.interval': 1, 'default_hooks.checkpoint.max_keep_ckpts': -1,
        'optim_wrapper.optimizer.lr': 0.1})
    if clamp:
        cfg.custom_hooks = [dict(type='LogitScaleClampHook')]
    build_runner(cfg, quiet=True).train()
    saved = [float(load_checkpoint_file(str(tmp_path / str(clamp) / f'iter_{i}.pth'))[
        'state_dict']['logit_scale']) for i in range(1, ITERS + 1)]
    if clamp:
        assert all(0 <= value <= math.log(100) for value in saved), saved
    else:  # without the hook the last step's update stays in the checkpoint
        assert all(value < 0 for value in saved), saved
