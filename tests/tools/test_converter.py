"""tools/model_converters/vilref_to_mm.py and vilref_mm.models.convert."""
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from mmengine.runner import load_checkpoint

import vilref_mm.models  # noqa: F401  registers the modules
from mmpretrain.registry import MODELS
from vilref_mm.models import (CheckpointConversionError, convert_checkpoint,
                              read_release_state_dict)
from vilref_mm.utils.checkpoint import checkpoint_rule

cn_clip_model = pytest.importorskip('cn_clip.clip.model')

ROOT = Path(__file__).parents[2]
CLI = ROOT / 'tools/model_converters/vilref_to_mm.py'

TINY_TEXT = dict(
    vocab_size=21128, text_attention_probs_dropout_prob=0.1, text_hidden_act='gelu',
    text_hidden_dropout_prob=0.1, text_hidden_size=128, text_initializer_range=0.02,
    text_intermediate_size=256, text_max_position_embeddings=512, text_num_attention_heads=2,
    text_num_hidden_layers=2, text_type_vocab_size=2)
# one attention head per 64 channels, as in the releases
TINY_VIT = dict(embed_dim=32, image_resolution=32, vision_layers=2, vision_width=128,
                vision_patch_size=16)
TINY_RN = dict(embed_dim=48, image_resolution=64, vision_layers=[1, 1, 1, 1], vision_width=16,
               vision_patch_size=None)


def release_state_dict(vision: dict, prefix: str = 'module.', half: bool = True) -> dict:
    """A random tiny cn-clip model's state dict as a release stores it."""
    torch.manual_seed(0)
    model = cn_clip_model.CLIP(**vision, **TINY_TEXT)
    return {f'{prefix}{k}': v.half() if half and v.is_floating_point() else v
            for k, v in model.state_dict().items()}


def run_cli(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(CLI), *map(str, args)], cwd=ROOT,
                          capture_output=True, text=True)


def built_model(model_cfg: dict):
    return MODELS.build(dict(type='ViLReF', **model_cfg, tokenizer=dict(
        type='ChineseBertTokenizer')))


@pytest.mark.parametrize('vision', [TINY_VIT, TINY_RN], ids=['vit', 'rn'])
def test_full_checkpoint_loads_strictly(tmp_path, vision):
    state_dict = release_state_dict(vision)
    state_dict['module.bert.pooler.dense.weight'] = torch.zeros(128, 128)  # old files
    src = tmp_path / 'release.pt'
    torch.save({'epoch': 3, 'step': 10, 'name': 'x', 'state_dict': state_dict}, src)
    dst = tmp_path / 'out' / 'converted.pth'
    converted = convert_checkpoint(str(src), str(dst))
    assert converted.unmatched == []
    assert converted.model_cfg['embed_dims'] == vision['embed_dim']
    assert converted.model_cfg['text_encoder']['bert_cfg']['num_hidden_layers'] == 2

    saved = torch.load(dst, weights_only=True)
    assert list(saved) == ['state_dict']
    assert all(v.dtype != torch.float16 for v in saved['state_dict'].values())
    model = built_model(converted.model_cfg)
    load_checkpoint(model, str(dst), strict=True)
    torch.testing.assert_close(model.text_projection,
                               state_dict['module.text_projection'].float())
    assert list(tmp_path.joinpath('out').iterdir()) == [dst]  # no temporary file left

    # the image encoder alone, from the full checkpoint
    backbone = MODELS.build(dict(converted.model_cfg['image_encoder'], init_cfg=dict(
        type='Pretrained', checkpoint=str(dst), prefix='image_encoder.')))
    backbone.init_weights()
    for key, value in backbone.state_dict().items():
        torch.testing.assert_close(value, model.image_encoder.state_dict()[key], msg=key)


@pytest.mark.parametrize('vision, use_cli, dense_cfg', [
    (TINY_VIT, True, dict(img_size=64, out_type='featmap', out_indices=(0, 1))),
    (TINY_RN, False, dict(out_indices=(0, 1, 2, 3))),
], ids=['vit', 'rn'])
def test_backbone_only_loads_into_backbone(tmp_path, vision, use_cli, dense_cfg):
    state_dict = release_state_dict(vision, prefix='', half=False)  # bare, fp32
    state_dict['extra_head.weight'] = torch.zeros(2)  # unknown: reported and ignored
    src, dst = tmp_path / 'bare.pt', tmp_path / 'backbone.pth'
    torch.save(state_dict, src)
    if use_cli:
        result = run_cli(src, dst, '--backbone-only')
        assert result.returncode == 0, result.stderr
        assert 'ignored 1 unmatched keys' in result.stdout and 'extra_head.weight' in result.stdout
        converted = convert_checkpoint(str(src), str(tmp_path / 'full.pth'))
    else:
        converted = convert_checkpoint(str(src), str(dst), backbone_only=True)
    assert converted.unmatched == ['extra_head.weight']

    backbone = MODELS.build(dict(converted.model_cfg['image_encoder'],
                                 init_cfg=dict(type='Pretrained', checkpoint=str(dst))))
    backbone.init_weights()
    checkpoint = torch.load(dst, weights_only=True)['state_dict']
    assert set(checkpoint) == set(backbone.state_dict())
    for key, value in checkpoint.items():
        torch.testing.assert_close(backbone.state_dict()[key], value, msg=key)

    # as a segmentation backbone: multi-level outputs, another input size (the ViT's position
    # embeddings resized on load)
    dense = MODELS.build(dict(converted.model_cfg['image_encoder'], **dense_cfg))
    load_checkpoint(dense, str(dst), strict=True)
    assert len(dense(torch.randn(1, 3, 128, 128))) == len(dense_cfg['out_indices'])


def test_safetensors_output_equals_pth(tmp_path):
    """A .safetensors destination holds the same tensors, loads strictly into the model and,
    converted with --backbone-only, through a backbone's Pretrained init_cfg."""
    src = tmp_path / 'release.pt'
    torch.save({'state_dict': release_state_dict(TINY_VIT)}, src)
    pth, safe = tmp_path / 'converted.pth', tmp_path / 'converted.safetensors'
    converted = convert_checkpoint(str(src), str(pth))
    result = run_cli(src, safe)
    assert result.returncode == 0, result.stderr
    assert f'to {safe}' in result.stdout
    reference = torch.load(pth, weights_only=True)['state_dict']
    model = built_model(converted.model_cfg)
    with checkpoint_rule():  # MMEngine reads safetensors under vilref_mm's rule only
        load_checkpoint(model, str(safe), strict=True)
    for key, value in model.state_dict().items():
        if key in reference:
            torch.testing.assert_close(value, reference[key], rtol=0, atol=0, msg=key)

    backbone_file = tmp_path / 'backbone.safetensors'
    assert run_cli(src, backbone_file, '--backbone-only').returncode == 0
    backbone = MODELS.build(dict(converted.model_cfg['image_encoder'],
                                 init_cfg=dict(type='Pretrained', checkpoint=str(backbone_file))))
    backbone.init_weights()
    for key, value in backbone.state_dict().items():
        torch.testing.assert_close(value, model.image_encoder.state_dict()[key], msg=key)


def test_error_cases(tmp_path):
    dst = tmp_path / 'out.pth'
    random_tensors = tmp_path / 'random.pt'
    torch.save({'weight': torch.randn(3, 3), 'bias': torch.randn(3)}, random_tensors)
    text_file = tmp_path / 'notes.txt'
    text_file.write_text('not a checkpoint')
    tensor_file = tmp_path / 'tensor.pt'
    torch.save(torch.randn(2), tensor_file)
    pickled_object = tmp_path / 'object.pt'
    torch.save({'state_dict': {'a': torch.zeros(1)}, 'cfg': Path('x')}, pickled_object)
    no_image_norm = tmp_path / 'no_image_norm.pt'
    torch.save({k: v for k, v in release_state_dict(TINY_VIT).items()
                if 'resblocks.0.ln_1.' not in k}, no_image_norm)
    no_text_dense = tmp_path / 'no_text_dense.pt'
    torch.save({k: v for k, v in release_state_dict(TINY_VIT).items()
                if 'layer.1.output.dense.' not in k}, no_text_dense)

    cases = [(random_tensors, CheckpointConversionError, 'lacks'),
             (text_file, CheckpointConversionError, 'truncated, corrupt'),
             (tensor_file, CheckpointConversionError, 'not a'),
             (pickled_object, CheckpointConversionError, r'weights_only=True.*--trust'),
             (no_image_norm, CheckpointConversionError, 'missing.*layers.0.ln1'),
             (no_text_dense, CheckpointConversionError, 'missing.*layer.1.output.dense'),
             (tmp_path / 'missing.pt', FileNotFoundError, 'does not exist')]
    for src, error, message in cases:
        with pytest.raises(error, match=message):
            convert_checkpoint(str(src), str(dst))
    # the command line: a one-line message naming the file, exit status 1
    result = run_cli(random_tensors, dst)
    assert result.returncode == 1
    assert result.stderr.startswith('error:') and str(random_tensors) in result.stderr
    assert 'Traceback' not in result.stderr
    assert not dst.exists()


def test_read_release_state_dict_normalises_keys(tmp_path):
    src = tmp_path / 'release.pt'
    torch.save({'module.module.logit_scale': torch.tensor(1.),
                'module.bert.pooler.dense.bias': torch.zeros(2)}, src)
    assert list(read_release_state_dict(str(src))) == ['logit_scale']
