"""ViLReF weights load into the backbones of the segmentation configs."""
from pathlib import Path

import pytest
import torch
from mmengine.config import Config
from mmengine.model import revert_sync_batchnorm
from mmengine.registry import DefaultScope
from mmpretrain.models.utils import resize_pos_embed
from mmseg.registry import MODELS

from vilref_mm.apis.segmentation import check_backbone_weights, read_backbone_state_dict

cn_clip_model = pytest.importorskip('cn_clip.clip.model')
from vilref_mm.models import convert_checkpoint  # noqa: E402

CONFIG_DIR = Path(__file__).resolve().parents[2] / 'configs' / 'segmentation'
VIT_CONFIG = CONFIG_DIR / 'upernet_vilref-vit-b16_4xb4-40kit_drive-512x512.py'
RN_CONFIG = CONFIG_DIR / 'upernet_vilref-rn50_4xb4-40kit_refuge-512x512.py'

# tiny cn-clip models in the release layout (one attention head per 64 channels)
TINY_TEXT = dict(
    vocab_size=21128, text_attention_probs_dropout_prob=0.1, text_hidden_act='gelu',
    text_hidden_dropout_prob=0.1, text_hidden_size=64, text_initializer_range=0.02,
    text_intermediate_size=128, text_max_position_embeddings=512, text_num_attention_heads=1,
    text_num_hidden_layers=1, text_type_vocab_size=2)
TINY_VIT = dict(embed_dim=32, image_resolution=32, vision_layers=4, vision_width=128,
                vision_patch_size=16)
TINY_RN = dict(embed_dim=48, image_resolution=64, vision_layers=[1, 1, 1, 1], vision_width=16,
               vision_patch_size=None)


@pytest.fixture(autouse=True)
def mmseg_scope():
    with DefaultScope.overwrite_default_scope('mmseg'):
        yield


def _release(tmp_path: Path, vision: dict) -> Path:
    """A random tiny cn-clip / ViLReF release checkpoint (DDP prefix, fp16)."""
    torch.manual_seed(0)
    model = cn_clip_model.CLIP(**vision, **TINY_TEXT)
    path = tmp_path / 'release.pt'
    torch.save({'state_dict': {f'module.{k}': v.half() if v.is_floating_point() else v
                               for k, v in model.state_dict().items()}}, path)
    return path


def _segmentor(config: Path, image_encoder: dict, init_cfg: dict):
    """The config's segmentor with the converted encoder's sizes, loaded through init_cfg."""
    cfg = Config.fromfile(config)
    backbone = cfg.model.backbone
    if backbone.type == 'ViLReFViT':
        backbone.arch = image_encoder['arch']
        backbone.out_indices = (0, 1, 2, 3)
        width = image_encoder['arch']['embed_dims']
        cfg.model.neck.in_channels = [width] * 4
        cfg.model.neck.out_channels = width
        cfg.model.decode_head.in_channels = [width] * 4
        cfg.model.auxiliary_head.in_channels = width
    else:
        backbone.base_channels = image_encoder['base_channels']
        backbone.stage_blocks = image_encoder['stage_blocks']
        backbone.num_heads = image_encoder['num_heads']
        backbone.output_dim = image_encoder['output_dim']
        backbone.img_size = image_encoder['img_size']  # the (unused, frozen) attention pool
        widths = [image_encoder['base_channels'] * 4 * 2**i for i in range(4)]
        cfg.model.decode_head.in_channels = widths
        cfg.model.auxiliary_head.in_channels = widths[2]
    cfg.model.decode_head.channels = cfg.model.auxiliary_head.channels = 8
    backbone.init_cfg = init_cfg
    model = revert_sync_batchnorm(MODELS.build(cfg.model))
    model.init_weights()
    return model


def _assert_backbone_equals(backbone, expected: dict) -> None:
    """Every parameter and buffer of the backbone holds the converted value."""
    state = backbone.state_dict()
    assert set(state) == set(expected)
    for key, value in expected.items():
        if key == 'pos_embed':  # stored for 32 px, resized to the config's 512 px
            grid = backbone.patch_resolution
            side = int((value.shape[1] - 1)**0.5)
            value = resize_pos_embed(value, (side, side), grid, 'bicubic', 1)
        torch.testing.assert_close(state[key], value, msg=key)


@pytest.mark.parametrize('vision, config', [(TINY_VIT, VIT_CONFIG), (TINY_RN, RN_CONFIG)],
                         ids=['vit', 'rn'])
def test_converted_weights_load_into_config_backbone(tmp_path, vision, config):
    release = _release(tmp_path, vision)
    backbone_only, full = tmp_path / 'backbone.pth', tmp_path / 'full.pth'
    converted = convert_checkpoint(str(release), str(backbone_only), backbone_only=True)
    convert_checkpoint(str(release), str(full))
    expected = converted.backbone_state_dict
    encoder = converted.model_cfg['image_encoder']

    # the --backbone-only file, without prefix
    model = _segmentor(config, encoder, dict(type='Pretrained', checkpoint=str(backbone_only)))
    _assert_backbone_equals(model.backbone, expected)
    # the whole converted ViLReF, image encoder under `image_encoder.`
    model = _segmentor(config, encoder, dict(type='Pretrained', checkpoint=str(full),
                                             prefix='image_encoder.'))
    _assert_backbone_equals(model.backbone, expected)

    # the demo's helper finds the prefix and checks the weights against the built backbone
    for path, prefix in ((backbone_only, ''), (full, 'image_encoder.')):
        weights, found = read_backbone_state_dict(str(path))
        assert found == prefix
        check_backbone_weights(weights, model.backbone, str(path))


def test_pretraining_checkpoint_needs_trust_and_wrong_sizes_are_named(tmp_path):
    """A checkpoint of one's own pre-training holds Python objects next to the weights."""
    cfg = Config.fromfile(VIT_CONFIG)
    cfg.model.backbone.update(arch=dict(embed_dims=32, num_layers=4, num_heads=2,
                                        feedforward_channels=64), out_indices=(0, 1, 2, 3),
                              img_size=64, init_cfg=None)
    backbone = MODELS.build(cfg.model.backbone)
    state = {f'image_encoder.{k}': v for k, v in backbone.state_dict().items()}
    state['text_projection'] = torch.zeros(2, 2)
    path = tmp_path / 'iter_10.pth'
    torch.save({'meta': {'iter': 10}, 'state_dict': state, 'message_hub': {'x': Path('y')}},
               path)

    with pytest.raises(RuntimeError, match=r'iter_10.pth needs Python objects .*pathlib'):
        read_backbone_state_dict(str(path))
    weights, prefix = read_backbone_state_dict(str(path), trusted=True)
    assert prefix == 'image_encoder.' and set(weights) == set(backbone.state_dict())
    check_backbone_weights(weights, backbone, str(path))

    wider = MODELS.build(dict(cfg.model.backbone, arch=dict(
        embed_dims=48, num_layers=5, num_heads=2, feedforward_channels=64)))
    with pytest.raises(ValueError, match=r'iter_10.pth.*missing.*layers\.4.*misshapen.*cls_token'):
        check_backbone_weights(weights, wider, str(path))
    with pytest.raises(ValueError, match='no key starts with'):
        read_backbone_state_dict(str(path), prefix='visual.', trusted=True)
