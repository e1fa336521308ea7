"""bf16 without loss scaling (AutocastOptimWrapper, --amp) and compiled towers (the config's
``compile`` setting) on a tiny ViLReF."""
import copy
from pathlib import Path

import pytest
import torch
from mmengine.config import Config
from mmengine.optim import build_optim_wrapper
from mmpretrain.registry import MODELS

from vilref_mm.datasets.synthetic import generate_synthetic_fundus
from vilref_mm.engine import build_runner, enable_amp
from vilref_mm.engine.optimizers import AutocastOptimWrapper
from vilref_mm.utils.checkpoint import load_checkpoint_file

CONFIG = Path(__file__).resolve().parents[1] / 'data' / 'configs' / 'tiny_vilref.py'


def tiny(cfg: Config):
    torch.manual_seed(0)
    model = MODELS.build(copy.deepcopy(cfg.model))
    model.init_weights()
    return model.train()


def batch(seed: int) -> dict:
    generator = torch.Generator().manual_seed(seed)
    return {'inputs': {
        'images': torch.randint(0, 256, (4, 3, 32, 32), dtype=torch.uint8, generator=generator),
        'text_ids': torch.randint(1000, 20000, (4, 32), generator=generator),
        'labels': (torch.rand(4, 25, generator=generator) < 0.2).float()}}


def test_enable_amp_keeps_the_optimizer():
    cfg = Config.fromfile(CONFIG)
    optimizer, paramwise = cfg.optim_wrapper.optimizer, cfg.optim_wrapper.paramwise_cfg
    enable_amp(cfg)
    assert cfg.optim_wrapper.type == 'AutocastOptimWrapper'
    assert cfg.optim_wrapper.dtype == 'bfloat16' and 'loss_scale' not in cfg.optim_wrapper
    assert cfg.optim_wrapper.optimizer == optimizer
    assert cfg.optim_wrapper.paramwise_cfg == paramwise


def test_bf16_step_without_a_scaler():
    cfg = Config.fromfile(CONFIG)
    enable_amp(cfg)
    model = tiny(cfg)
    wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    assert isinstance(wrapper, AutocastOptimWrapper) and not hasattr(wrapper, 'loss_scaler')
    with wrapper.optim_context(model):
        assert torch.is_autocast_enabled('cpu')
        assert torch.get_autocast_dtype('cpu') == torch.bfloat16
    before = model.text_projection.detach().clone()
    dtypes = []
    model.image_encoder.layers[0].attn.qkv.register_forward_hook(
        lambda module, inputs, output: dtypes.append(output.dtype))
    log_vars = model.train_step(batch(0), wrapper)
    assert dtypes == [torch.bfloat16]  # the image tower's linear layers ran in bf16
    assert torch.isfinite(log_vars['loss'])
    assert not torch.equal(model.text_projection, before)
    with pytest.raises(ValueError, match='float16 needs loss scaling'):
        AutocastOptimWrapper(dtype='float16', optimizer=wrapper.optimizer)


def test_compiled_towers_train_as_the_eager_ones():
    """Compiled towers (the eager backend: dynamo's tracing without code generation) give
    the same losses, momentum towers and queue as the uncompiled model."""
    cfg = Config.fromfile(CONFIG)
    models = [tiny(cfg), tiny(cfg)]
    models[1].compile_towers(backend='eager')
    keys = [list(model.state_dict()) for model in models]
    assert keys[0] == keys[1]
    losses = [[], []]
    for model, record in zip(models, losses):
        wrapper = build_optim_wrapper(model, copy.deepcopy(cfg.optim_wrapper))
        for seed in range(3):
            record.append(model.train_step(batch(seed), wrapper)['loss'].detach().item())
            model.momentum_update(0.9)
            model.enqueue_momentum_batch()
    assert losses[0] == pytest.approx(losses[1], rel=1e-5)
    for name in ('momentum_text_projection', 'memory_queue.image_feats'):
        torch.testing.assert_close(models[0].state_dict()[name], models[1].state_dict()[name])


@pytest.mark.parametrize('flexible', [False, True], ids=['ViLReFRunner', 'ViLReFFlexibleRunner'])
def test_runner_compiles_the_towers(tmp_path, flexible):
    """The config's ``compile``: ViLReFRunner, and ViLReFFlexibleRunner through its strategy
    (MMEngine's FlexibleRunner.from_cfg would drop the setting)."""
    generate_synthetic_fundus(tmp_path / 'data', num_train=8, num_val=0, num_test=0, size=48,
                              seed=0)
    cfg = Config.fromfile(CONFIG)
    if flexible:
        cfg.runner_type = 'ViLReFFlexibleRunner'
        cfg.strategy = dict(type='ViLReFSingleDeviceStrategy')
    cfg.work_dir = str(tmp_path / 'work')
    cfg.compile = dict(backend='eager')
    cfg.train_dataloader.dataset.data_root = str(tmp_path / 'data')
    cfg.train_cfg = dict(type='IterBasedTrainLoop', max_iters=2)
    cfg.val_cfg = cfg.val_dataloader = cfg.val_evaluator = None
    cfg.default_hooks.checkpoint = dict(type='CheckpointHook', by_epoch=False, interval=2)
    runner = build_runner(cfg)
    runner.train()
    model = runner.model
    for name in ('image_encoder', 'text_encoder', 'momentum_image_encoder',
                 'momentum_text_encoder'):
        assert getattr(model, name)._compiled_call_impl is not None, name
    saved = load_checkpoint_file(str(tmp_path / 'work' / 'iter_2.pth'))['state_dict']
    assert list(saved) == list(model.state_dict())  # no _orig_mod. prefixes
    assert int(saved['memory_queue.num_filled']) == 8
