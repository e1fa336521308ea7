"""The ViLReF model, its data preprocessor and configs."""
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from mmengine.config import Config

import vilref_mm.models  # noqa: F401  registers the modules
from mmpretrain.registry import MODELS
from vilref_mm.models import ViLReF, ViLReFDataPreprocessor
from vilref_mm.models.data_preprocessor import CLIP_MEAN, CLIP_STD

ROOT = Path(__file__).parents[2]

TINY_BERT = dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=2,
                 intermediate_size=128, hidden_dropout_prob=0., attention_probs_dropout_prob=0.)
TINY_MODEL = dict(
    type='ViLReF',
    image_encoder=dict(
        type='ViLReFViT',
        arch=dict(embed_dims=64, num_layers=2, num_heads=2, feedforward_channels=128),
        img_size=32,
        patch_size=16),
    text_encoder=dict(type='ChineseBertEncoder', bert_cfg=TINY_BERT),
    embed_dims=32,
    tokenizer=dict(type='ChineseBertTokenizer', context_length=16))

REPORTS = ['右眼视盘边界清，C/D约0.7', '黄斑区可见硬性渗出', '眼底未见明显异常']


def tiny_model(**overrides) -> ViLReF:
    torch.manual_seed(0)
    return MODELS.build({**TINY_MODEL, **overrides})


def packed_batch(model: ViLReF, size: int, num: int = 2, num_classes: int = 3) -> dict:
    """A batch as the pre-training pipeline packs it: per-sample uint8 BGR images, ids, labels."""
    generator = torch.Generator().manual_seed(0)
    return {
        'inputs': {
            'images': [torch.randint(0, 256, (3, size, size), dtype=torch.uint8,
                                     generator=generator) for _ in range(num)],
            'text_ids': list(model.tokenizer(REPORTS[:num])),
            # Samples 0 and 2 share their findings; C = the model's label length.
            'labels': [F.pad(torch.tensor(row), (0, num_classes - 3))
                       for row in ([1., 0., 1.], [0., 1., 0.], [1., 0., 1.])][:num],
        }
    }


def test_pretrain_vitb_forward_backward_on_cpu():
    cfg = Config.fromfile(ROOT / 'configs/vilref/pretrain_vitb.py')
    assert cfg.default_scope == 'mmpretrain'
    torch.manual_seed(0)
    model = MODELS.build(cfg.model).train()
    assert model.image_projection.shape == (768, 512)
    assert model.text_projection.shape == (768, 512)
    data = model.data_preprocessor(packed_batch(model, 224, num_classes=25), training=True)
    assert data['inputs']['images'].shape == (2, 3, 224, 224)
    losses = model(**data, mode='loss')
    assert torch.isfinite(losses['loss'])
    torch.testing.assert_close(losses['logit_scale'], torch.tensor(1 / 0.07))
    losses['loss'].backward()
    for name in ('image_encoder.patch_embed.projection.weight',
                 'image_encoder.layers.0.attn.qkv.weight', 'image_projection',
                 'text_encoder.bert.encoder.layer.0.attention.self.query.weight',
                 'text_encoder.bert.embeddings.word_embeddings.weight', 'text_projection',
                 'logit_scale'):
        grad = model.get_parameter(name).grad
        assert grad is not None and grad.abs().sum() > 0, name


def test_pretrain_rn50_config_builds():
    cfg = Config.fromfile(ROOT / 'configs/vilref/pretrain_rn50.py')
    with torch.device('meta'):
        model = MODELS.build(cfg.model)
    assert model.image_projection is None
    assert model.text_projection.shape == (768, 1024)
    assert model.text_encoder.bert.config.num_hidden_layers == 12
    assert model.image_encoder.attnpool.c_proj.out_features == 1024


def test_pretrain_configs_share_the_recipe():
    """pretrain_rn50.py trains as pretrain_vitb.py does; only the architecture differs."""
    vitb, rn50 = (Config.fromfile(ROOT / f'configs/vilref/pretrain_{name}.py')
                  for name in ('vitb', 'rn50'))
    for key in ('train_dataloader', 'val_dataloader', 'val_evaluator', 'test_dataloader',
                'optim_wrapper', 'param_scheduler', 'train_cfg', 'custom_hooks',
                'default_hooks'):
        assert rn50[key] == vitb[key], key
    for key in ('queue_size', 'num_classes', 'zero_shot', 'loss', 'tokenizer'):
        assert rn50.model[key] == vitb.model[key], key
    assert vitb.model.queue_size == 65536
    # Batch expansion (other hooks, e.g. the logit-scale clamp, may join them).
    assert {'MomentumUpdateHook', 'MemoryQueueHook'} <= {hook['type']
                                                         for hook in rn50.custom_hooks}


def test_loss_without_labels_is_clip_infonce():
    model = tiny_model().eval()
    batch = packed_batch(model, 32, num=3)
    del batch['inputs']['labels']
    data = model.data_preprocessor(batch)
    loss = model(**data, mode='loss')['loss']
    image = model.extract_image_feat(data['inputs']['images'])
    text = model.extract_text_feat(data['inputs']['text_ids'])
    logits = model.logit_scale.exp() * image @ text.t()
    targets = torch.arange(3)
    expected = (F.cross_entropy(logits, targets) + F.cross_entropy(logits.t(), targets)) / 2
    torch.testing.assert_close(loss, expected)


def test_loss_uses_labels():
    """Samples 0 and 2 share their labels: WSCL eliminates them as negatives of each other."""
    model = tiny_model().eval()
    data = model.data_preprocessor(packed_batch(model, 32, num=3))
    with_labels = model(**data, mode='loss')['loss']
    clip = tiny_model(loss=dict(type='WeightedSimilarityCouplingLoss', gamma=0.)).eval()
    assert not torch.allclose(with_labels, clip(**data, mode='loss')['loss'])


def test_tensor_mode_and_feature_extraction():
    model = tiny_model().eval()
    data = model.data_preprocessor(packed_batch(model, 32))
    with torch.no_grad():
        feats = model(**data, mode='tensor')
        assert set(feats) == {'image_feats', 'text_feats'}
        assert feats['image_feats'].shape == feats['text_feats'].shape == (2, 32)
        torch.testing.assert_close(feats['image_feats'].norm(dim=-1), torch.ones(2))
        torch.testing.assert_close(model.extract_text_feat(REPORTS[:2]), feats['text_feats'])
        torch.testing.assert_close(model.extract_text_feat(REPORTS[0]), feats['text_feats'][:1])
        images_only = model(data['inputs']['images'], mode='tensor')
    assert set(images_only) == {'image_feats'}
    with pytest.raises(ValueError, match='class prompts'):
        model(**data, mode='predict')
    with pytest.raises(ValueError, match='invalid mode'):
        model(**data, mode='unknown')


def test_clamp_logit_scale():
    model = tiny_model()
    assert model.logit_scale.item() == pytest.approx(math.log(1 / 0.07))
    with torch.no_grad():
        model.logit_scale.fill_(10.)
    model.clamp_logit_scale()
    assert model.logit_scale.item() == pytest.approx(math.log(100))
    with torch.no_grad():
        model.logit_scale.fill_(-1.)
    model.clamp_logit_scale()
    assert model.logit_scale.item() == 0
    assert model.logit_scale.requires_grad


def test_init_cfg_pretrained_loads_full_checkpoint(tmp_path):
    source = tiny_model()
    with torch.no_grad():
        source.logit_scale.fill_(2.5)
    checkpoint = tmp_path / 'vilref.pth'
    torch.save({'state_dict': source.state_dict()}, checkpoint)
    torch.manual_seed(1)
    model = MODELS.build({**TINY_MODEL, 'init_cfg': dict(type='Pretrained',
                                                          checkpoint=str(checkpoint))})
    model.init_weights()
    for name, value in source.state_dict().items():
        torch.testing.assert_close(model.state_dict()[name], value, msg=name)


def test_data_preprocessor_batches_and_normalises():
    preprocessor = ViLReFDataPreprocessor()
    images = [torch.randint(0, 256, (3, 8, 8), dtype=torch.uint8) for _ in range(2)]
    out = preprocessor({'inputs': images})
    mean = torch.tensor(CLIP_MEAN).view(3, 1, 1)
    std = torch.tensor(CLIP_STD).view(3, 1, 1)
    expected = (torch.stack(images).flip(1).float() - mean) / std  # BGR -> RGB
    torch.testing.assert_close(out['inputs']['images'], expected)
    assert set(out['inputs']) == {'images'}

    packed = {'images': images, 'text_ids': [torch.tensor([101, 5, 102, 0])] * 2,
              'labels': [torch.tensor([1, 0]), torch.tensor([0, 1])]}
    out = preprocessor({'inputs': packed, 'data_samples': None})
    torch.testing.assert_close(out['inputs']['images'], expected)
    assert out['inputs']['text_ids'].dtype == torch.long
    assert out['inputs']['text_ids'].shape == (2, 4)
    assert out['inputs']['labels'].dtype == torch.float32
    assert out['inputs']['labels'].tolist() == [[1., 0.], [0., 1.]]

    # images of different sizes are padded by mmpretrain's per-sample path
    ragged = [torch.zeros(3, 8, 8, dtype=torch.uint8), torch.zeros(3, 6, 8, dtype=torch.uint8)]
    assert preprocessor({'inputs': ragged})['inputs']['images'].shape == (2, 3, 8, 8)
    with pytest.raises(ValueError, match="inputs\\['text_ids'\\].*different shapes"):
        preprocessor({'inputs': {'text_ids': [torch.zeros(4), torch.zeros(5)]}})
    with pytest.raises(KeyError, match='unexpected input keys'):
        preprocessor({'inputs': {'image': images}})
