"""Layer-wise learning-rate decay of the ViT segmentation configs."""
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from mmengine.config import Config
from mmengine.model import revert_sync_batchnorm
from mmengine.optim import build_optim_wrapper
from mmengine.registry import DefaultScope
from mmseg.registry import MODELS

from vilref_mm.engine.optimizers import BackboneLayerDecayOptimWrapperConstructor

CONFIG = (Path(__file__).resolve().parents[2] / 'configs' / 'segmentation' /
          'upernet_vilref-vit-b16_4xb4-40kit_drive-512x512.py')
NUM_LAYERS = 4


@pytest.fixture(autouse=True)
def mmseg_scope():
    with DefaultScope.overwrite_default_scope('mmseg'):
        yield


def _model_and_optim_cfg():
    """A 4-block, 32-wide version of the ViT-B/16 UPerNet config and its optim_wrapper."""
    cfg = Config.fromfile(CONFIG)
    cfg.model.backbone.update(
        arch=dict(embed_dims=32, num_layers=NUM_LAYERS, num_heads=2, feedforward_channels=64),
        out_indices=(0, 1, 2, 3), img_size=64, init_cfg=None)
    cfg.model.neck.update(in_channels=[32] * 4, out_channels=16)
    cfg.model.decode_head.update(in_channels=[16] * 4, channels=8)
    cfg.model.auxiliary_head.update(in_channels=16, channels=8)
    return revert_sync_batchnorm(MODELS.build(cfg.model)), cfg.optim_wrapper


def test_learning_rate_and_weight_decay_per_parameter():
    model, optim_cfg = _model_and_optim_cfg()
    optim_wrapper = build_optim_wrapper(model, optim_cfg)
    base_lr = optim_cfg.optimizer.lr
    base_wd = optim_cfg.optimizer.weight_decay
    decay = optim_cfg.paramwise_cfg.layer_decay_rate
    groups = {group['param_name']: group for group in optim_wrapper.optimizer.param_groups}
    trainable = {name for name, p in model.named_parameters() if p.requires_grad}
    assert set(groups) == trainable  # one group per parameter, none forgotten

    top = NUM_LAYERS + 1  # depths: 0 stem, 1..NUM_LAYERS blocks, NUM_LAYERS + 1 the rest

    def lr_at(depth):
        return base_lr * decay**(top - depth)

    expected_lr = {
        'backbone.cls_token': lr_at(0),
        'backbone.pos_embed': lr_at(0),
        'backbone.patch_embed.projection.weight': lr_at(0),
        'backbone.layers.0.attn.qkv.weight': lr_at(1),
        f'backbone.layers.{NUM_LAYERS - 1}.ffn.layers.1.bias': lr_at(NUM_LAYERS),
        'backbone.ln1.weight': base_lr,
        'neck.convs.0.conv.weight': base_lr,
        'decode_head.conv_seg.weight': base_lr,
        'auxiliary_head.conv_seg.bias': base_lr,
    }
    for name, lr in expected_lr.items():
        assert groups[name]['lr'] == pytest.approx(lr), name
    assert groups['backbone.cls_token']['lr'] < groups['backbone.layers.0.attn.qkv.weight']['lr']

    expected_wd = {
        'backbone.cls_token': 0.,
        'backbone.pos_embed': 0.,
        'backbone.layers.0.ln1.weight': 0.,
        'backbone.layers.0.attn.qkv.bias': 0.,
        'decode_head.bottleneck.bn.weight': 0.,
        'backbone.layers.0.attn.qkv.weight': base_wd,
        'backbone.patch_embed.projection.weight': base_wd,
        'decode_head.conv_seg.weight': base_wd,
    }
    for name, weight_decay in expected_wd.items():
        assert groups[name]['weight_decay'] == pytest.approx(weight_decay), name


def test_backbone_without_layer_depths_is_refused():
    """A backbone without get_layer_depth (the ModifiedResNet) gets a clear error."""
    model, optim_cfg = _model_and_optim_cfg()
    model.backbone = torch.nn.Conv2d(3, 32, 16, 16)
    constructor = BackboneLayerDecayOptimWrapperConstructor(optim_cfg, optim_cfg.paramwise_cfg)
    with pytest.raises(TypeError, match='get_layer_depth.*Conv2d'):
        constructor(model)


def test_import_registers_constructor_in_mmseg():
    """`custom_imports=['vilref_mm']` of the configs is enough to find the constructor."""
    code = ('import vilref_mm\n'
            'from mmseg.registry import OPTIM_WRAPPER_CONSTRUCTORS as R\n'
            'assert R.get("BackboneLayerDecayOptimWrapperConstructor") is not None\n')
    result = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
