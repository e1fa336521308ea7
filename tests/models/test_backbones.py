"""Tests of the ViLReF image encoders and of the mapping of the released weights."""
import pytest
import torch
import torch.nn.functional as F
from cn_clip.clip.model import ModifiedResNet, VisualTransformer
from mmengine.registry import DefaultScope
from mmpretrain.models.utils import QuickGELU
from mmpretrain.registry import MODELS
from mmseg.registry import MODELS as SEG_MODELS

from vilref_mm.models.backbones import (ViLReFModifiedResNet, ViLReFViT,
                                        convert_visual_weights)

TINY_VIT = dict(embed_dims=192, num_layers=4, num_heads=3, feedforward_channels=768)
TINY_VIT_CNCLIP = dict(input_resolution=112, patch_size=16, width=192, layers=4, heads=3,
                       output_dim=64)
VIT_B_CNCLIP = dict(input_resolution=224, patch_size=16, width=768, layers=12, heads=12,
                    output_dim=512)
TINY_RN_CNCLIP = dict(layers=(1, 2, 2, 1), output_dim=64, heads=4, input_resolution=64, width=8)
RN50_CNCLIP = dict(layers=(3, 4, 6, 3), output_dim=1024, heads=32, input_resolution=224,
                   width=64)


def tiny_vit(**kwargs) -> ViLReFViT:
    return ViLReFViT(arch=TINY_VIT, img_size=112, patch_size=16, **kwargs)


def tiny_resnet(**kwargs) -> ViLReFModifiedResNet:
    return ViLReFModifiedResNet(
        stage_blocks=(1, 2, 2, 1), base_channels=8, num_heads=4, output_dim=64, img_size=64,
        **kwargs)


@torch.no_grad()
def randomize(model: torch.nn.Module) -> torch.nn.Module:
    """Perturb every parameter and BatchNorm statistic (zeros and ones are too easy)."""
    torch.manual_seed(0)
    for param in model.parameters():
        param.add_(torch.randn_like(param) * 0.02)
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.normal_(0, 0.1)
            module.running_var.uniform_(0.5, 1.5)
    return model


def release_visual_state_dict(reference: torch.nn.Module) -> dict:
    return {f'visual.{k}': v for k, v in randomize(reference).state_dict().items()}


def converted(reference: torch.nn.Module, **overrides):
    """Backbone built from the converted weights of a cn-clip visual encoder."""
    weights = convert_visual_weights(release_visual_state_dict(reference))
    cfg = {**weights.backbone_cfg, **overrides}
    backbone = MODELS.build(cfg)
    backbone.load_state_dict(weights.state_dict, strict=True)
    return backbone.eval(), weights


def parameter_storages(model: torch.nn.Module) -> set:
    return {p.untyped_storage().data_ptr() for p in model.parameters()}


def saved_activation_bytes(model: torch.nn.Module, images: torch.Tensor):
    """Bytes autograd keeps for backward, parameters excluded, and the outputs."""
    params = parameter_storages(model)
    total = 0

    def pack(tensor):
        nonlocal total
        if tensor.untyped_storage().data_ptr() not in params:
            total += tensor.numel() * tensor.element_size()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        outs = model(images)
    return total, outs


def max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return (a - b).abs().max().item()


# ----------------------------------------------------------------------------- ViT


@pytest.mark.parametrize('out_type, shape', [
    ('cls_token', (2, 192)),
    ('avg_featmap', (2, 192)),
    ('raw', (2, 1 + 7 * 7, 192)),
    ('featmap', (2, 192, 7, 7)),
])
def test_vit_output_types(out_type, shape):
    model = tiny_vit(out_type=out_type, out_indices=(1, 3)).eval()
    with torch.no_grad():
        outs = model(torch.randn(2, 3, 112, 112))
    assert len(outs) == 2
    assert all(out.shape == shape for out in outs)


def test_vit_defaults_are_clip_vit_b16():
    model = ViLReFViT()
    assert (model.embed_dims, model.num_layers) == (768, 12)
    assert model.patch_embed.projection.bias is None
    assert model.pos_embed.shape == (1, 197, 768) and model.cls_token.shape == (1, 1, 768)
    assert model.pre_norm.eps == 1e-5 and model.ln1.eps == 1e-5
    layer = model.layers[0]
    assert layer.attn.num_heads == 12 and layer.ffn.layers[0][0].out_features == 3072
    assert isinstance(layer.ffn.layers[0][1], QuickGELU)


@pytest.mark.parametrize('size', [(512, 512), (96, 128)])
def test_vit_featmaps_any_input_size(size):
    model = tiny_vit(out_type='featmap', out_indices=(0, 1, 2, 3)).eval()
    raw_model = tiny_vit(out_type='raw', out_indices=(0, 1, 2, 3)).eval()
    raw_model.load_state_dict(model.state_dict())
    images = torch.randn(1, 3, *size)
    with torch.no_grad():
        featmaps, raws = model(images), raw_model(images)
    grid = (size[0] // 16, size[1] // 16)
    for featmap, raw in zip(featmaps, raws):
        assert featmap.shape == (1, 192, *grid)
        # token 1 + r * W + c is the patch in row r, column c
        assert torch.equal(featmap[0, :, 1, 2], raw[0, 1 + grid[1] + 2])


def test_vit_b16_segmentation_featmaps():
    model = ViLReFViT(out_type='featmap', out_indices=(3, 5, 7, 11)).eval()
    with torch.no_grad():
        outs = model(torch.randn(1, 3, 96, 128))
    assert [out.shape for out in outs] == [(1, 768, 6, 8)] * 4


def test_vit_position_embeddings_resized_bicubic_keeping_cls():
    model = tiny_vit(out_type='raw', out_indices=(0, ))
    with torch.no_grad():
        model.pos_embed.normal_()
    captured = {}
    model.pre_norm.register_forward_hook(lambda m, args, out: captured.update(tokens=args[0]))
    model.eval()
    images = torch.randn(1, 3, 96, 128)
    with torch.no_grad():
        model(images)
        tokens, _ = model.patch_embed(images)
    pos = captured['tokens'][0, 1:] - tokens[0]
    grid = model.pos_embed[:, 1:].reshape(1, 7, 7, 192).permute(0, 3, 1, 2)
    expected = F.interpolate(grid, size=(6, 8), mode='bicubic', align_corners=False)
    torch.testing.assert_close(pos, expected.flatten(2)[0].t())
    torch.testing.assert_close(captured['tokens'][0, 0],
                               model.cls_token[0, 0] + model.pos_embed[0, 0])


def test_patch_dropout_keeps_cls_and_a_random_subset():
    model = tiny_vit(mask_ratio=0.5).train()
    tokens = torch.arange(3 * 50, dtype=torch.float32).reshape(3, 50, 1).expand(-1, -1, 4)
    kept = model.patch_dropout(tokens)
    assert kept.shape == (3, 1 + int(49 * 0.5), 4)
    assert torch.equal(kept[:, 0], tokens[:, 0])
    for sample in range(3):
        ids = kept[sample, 1:, 0] - 50 * sample
        assert ids.min() >= 1 and ids.max() <= 49
        assert torch.equal(ids, ids.unique())  # distinct, in their original order
    assert not torch.equal(kept[0, 1:, 0], kept[1, 1:, 0] - 50)


def test_patch_dropout_shortens_the_sequence_in_training_only():
    model = tiny_vit(mask_ratio=0.75, out_type='raw').train()
    images = torch.randn(2, 3, 112, 112)
    assert model(images)[0].shape == (2, 1 + int(49 * 0.25), 192)
    reference = tiny_vit(out_type='raw').eval()
    reference.load_state_dict(model.state_dict())
    model.eval()
    with torch.no_grad():
        assert torch.equal(model(images)[0], reference(images)[0])


def test_patch_dropout_rejects_bad_settings():
    with pytest.raises(ValueError, match='mask_ratio'):
        tiny_vit(mask_ratio=1.0)
    with pytest.raises(ValueError, match='featmap'):
        tiny_vit(mask_ratio=0.5, out_type='featmap')


def test_vit_attention_is_fused():
    model = tiny_vit().eval()
    assert all(layer.attn.scaled_dot_product_attention is F.scaled_dot_product_attention
               for layer in model.layers)
    with torch.no_grad(), torch.profiler.profile() as prof:
        model(torch.randn(1, 3, 112, 112))
    calls = [e.count for e in prof.key_averages() if e.key == 'aten::scaled_dot_product_attention']
    assert calls == [TINY_VIT['num_layers']]


def assert_checkpointing_equivalent(make_model, images):
    """Same outputs, gradients and buffers with ``with_cp``; returns the saved bytes."""
    plain, with_cp = make_model(with_cp=False).train(), make_model(with_cp=True).train()
    with_cp.load_state_dict(plain.state_dict())
    plain_bytes, plain_outs = saved_activation_bytes(plain, images)
    cp_bytes, cp_outs = saved_activation_bytes(with_cp, images)
    sum(out.square().sum() for out in plain_outs).backward()
    sum(out.square().sum() for out in cp_outs).backward()
    for plain_out, cp_out in zip(plain_outs, cp_outs):
        torch.testing.assert_close(cp_out, plain_out, rtol=0, atol=1e-6)
    for (name, plain_param), cp_param in zip(plain.named_parameters(), with_cp.parameters()):
        if plain_param.grad is not None:
            torch.testing.assert_close(cp_param.grad, plain_param.grad, rtol=1e-5, atol=1e-6,
                                       msg=name)
    for (name, plain_buffer), cp_buffer in zip(plain.named_buffers(), with_cp.buffers()):
        torch.testing.assert_close(cp_buffer, plain_buffer, rtol=0, atol=0, msg=name)
    return plain_bytes, cp_bytes


def test_vit_gradient_checkpointing():
    torch.manual_seed(0)
    plain_bytes, cp_bytes = assert_checkpointing_equivalent(
        lambda **kw: tiny_vit(out_type='featmap', out_indices=(1, 3), **kw),
        torch.randn(2, 3, 112, 112))
    assert cp_bytes < plain_bytes / 4


def test_vit_checkpointing_off_without_grad():
    model = tiny_vit(with_cp=True).train()
    bytes_saved, _ = saved_activation_bytes(model, torch.randn(1, 3, 112, 112))
    with torch.no_grad():
        out = model(torch.randn(1, 3, 112, 112))[0]
    assert bytes_saved > 0 and not out.requires_grad


# ------------------------------------------------------------------- ModifiedResNet


def stage_shapes(channels: int, size: tuple) -> list:
    return [(1, channels * 2**i, size[0] // 2**(i + 2), size[1] // 2**(i + 2)) for i in range(4)]


@pytest.mark.parametrize('size', [(64, 64), (512, 512), (96, 128)])
def test_resnet_outputs_any_input_size(size):
    model = tiny_resnet(out_indices=(0, 1, 2, 3, 4)).eval()
    with torch.no_grad():
        outs = model(torch.randn(1, 3, *size))
    assert [out.shape for out in outs] == stage_shapes(32, size) + [(1, 64)]


def test_resnet50_outputs():
    model = ViLReFModifiedResNet(out_indices=(0, 1, 2, 3, 4)).eval()
    with torch.no_grad():
        outs = model(torch.randn(1, 3, 96, 128))
    assert [out.shape for out in outs] == stage_shapes(256, (96, 128)) + [(1, 1024)]


def test_resnet_default_output_is_the_attention_pool():
    model = tiny_resnet().eval()
    assert model.out_indices == (4, )
    with torch.no_grad():
        (pooled, ) = model(torch.randn(2, 3, 64, 64))
    assert pooled.shape == (2, 64)
    assert all(p.requires_grad for p in model.attnpool.parameters())


def test_resnet_loads_attention_pool_embeddings_of_another_grid():
    """Weights stored at 64 px (a 2 x 2 grid) load strictly into a 128 px model (4 x 4),
    resized as the forward pass of the 64 px model resizes them for a 128 px input."""
    stored = randomize(tiny_resnet()).eval()
    larger = ViLReFModifiedResNet(stage_blocks=(1, 2, 2, 1), base_channels=8, num_heads=4,
                                  output_dim=64, img_size=128).eval()
    larger.load_state_dict(stored.state_dict())
    assert larger.attnpool.positional_embedding.shape == (4 * 4 + 1, 256)
    images = torch.randn(2, 3, 128, 128)
    with torch.no_grad():
        torch.testing.assert_close(larger(images), stored(images))
        assert not torch.allclose(tiny_resnet().eval()(images)[0], stored(images)[0])


def test_resnet_unused_attention_pool_is_frozen():
    model = tiny_resnet(out_indices=(0, 1, 2, 3))
    assert not any(p.requires_grad for p in model.attnpool.parameters())
    assert all(p.requires_grad for p in model.layer4.parameters())
    with pytest.raises(ValueError, match='out_indices'):
        tiny_resnet(out_indices=(5, ))


def test_resnet_attention_pool_is_fused():
    model = tiny_resnet().eval()
    with torch.no_grad(), torch.profiler.profile() as prof:
        model(torch.randn(1, 3, 64, 64))
    assert any(e.key == 'aten::scaled_dot_product_attention' for e in prof.key_averages())


def test_resnet_gradient_checkpointing():
    torch.manual_seed(0)
    plain_bytes, cp_bytes = assert_checkpointing_equivalent(
        lambda **kw: tiny_resnet(out_indices=(0, 1, 2, 3, 4), **kw), torch.randn(2, 3, 64, 64))
    assert cp_bytes < plain_bytes / 2


def test_resnet_parameter_names_equal_the_release():
    reference = ModifiedResNet(**RN50_CNCLIP)
    model = ViLReFModifiedResNet()
    ours, theirs = model.state_dict(), reference.state_dict()
    assert list(ours) == list(theirs)
    assert all(ours[k].shape == theirs[k].shape for k in ours)


# --------------------------------------------------------------- parity with cn-clip


def assert_vit_parity(reference: VisualTransformer, size: int, batch: int):
    model, weights = converted(reference, out_type='raw', out_indices=(0, 2, -1))
    reference.eval()
    images = torch.randn(batch, 3, size, size)
    blocks = reference.transformer.resblocks
    hidden = {}
    for i in (0, 2):
        blocks[i].register_forward_hook(
            lambda m, args, out, i=i: hidden.update({i: out.permute(1, 0, 2)}))
    with torch.no_grad():
        expected = reference(images)
        outs = model(images)
    image_features = outs[-1][:, 0] @ weights.projection
    assert max_diff(image_features, expected) < 1e-4
    assert max_diff(outs[0], hidden[0]) < 1e-4
    assert max_diff(outs[1], hidden[2]) < 1e-4


def assert_resnet_parity(reference: ModifiedResNet, size: int, batch: int):
    model, weights = converted(reference, out_indices=(0, 1, 2, 3, 4))
    assert weights.projection is None
    reference.eval()
    stages = {}
    for i in range(4):
        getattr(reference, f'layer{i + 1}').register_forward_hook(
            lambda m, args, out, i=i: stages.update({i: out}))
    images = torch.randn(batch, 3, size, size)
    with torch.no_grad():
        expected = reference(images)
        outs = model(images)
    for i in range(4):
        assert max_diff(outs[i], stages[i]) < 1e-4
    assert max_diff(outs[4], expected) < 1e-4


def test_vit_parity_with_cn_clip_reduced():
    torch.manual_seed(0)
    assert_vit_parity(VisualTransformer(**TINY_VIT_CNCLIP), size=112, batch=2)


def test_resnet_parity_with_cn_clip_reduced():
    torch.manual_seed(0)
    assert_resnet_parity(ModifiedResNet(**TINY_RN_CNCLIP), size=64, batch=2)


@pytest.mark.slow
def test_vit_b16_parity_with_cn_clip():
    torch.manual_seed(0)
    assert_vit_parity(VisualTransformer(**VIT_B_CNCLIP), size=224, batch=1)


@pytest.mark.slow
def test_rn50_parity_with_cn_clip():
    torch.manual_seed(0)
    assert_resnet_parity(ModifiedResNet(**RN50_CNCLIP), size=224, batch=2)


# ------------------------------------------------------------------------ convert


def test_convert_vit_b16_detects_the_architecture():
    weights = convert_visual_weights(VisualTransformer(**VIT_B_CNCLIP).state_dict())
    cfg = weights.backbone_cfg
    assert cfg['type'] == 'ViLReFViT'
    assert cfg['arch'] == dict(embed_dims=768, num_layers=12, num_heads=12,
                               feedforward_channels=3072)
    assert (cfg['img_size'], cfg['patch_size']) == (224, 16)
    assert weights.projection.shape == (768, 512)
    assert weights.state_dict['layers.11.attn.qkv.weight'].shape == (2304, 768)


def test_convert_rn50_is_the_identity_on_names():
    reference = ModifiedResNet(**RN50_CNCLIP).state_dict()
    weights = convert_visual_weights({f'visual.{k}': v for k, v in reference.items()})
    assert weights.backbone_cfg == dict(
        type='ViLReFModifiedResNet', stage_blocks=(3, 4, 6, 3), base_channels=64, num_heads=32,
        output_dim=1024, img_size=224, out_indices=4)
    assert weights.projection is None
    assert weights.state_dict.keys() == reference.keys()


def test_convert_keeps_fp16():
    reference = VisualTransformer(**TINY_VIT_CNCLIP)
    state_dict = {k: v.half() for k, v in reference.state_dict().items()}
    weights = convert_visual_weights(state_dict)
    assert weights.projection.dtype == torch.float16
    assert all(v.dtype == torch.float16 for v in weights.state_dict.values())


@pytest.mark.parametrize('edit, message', [
    (lambda sd: sd.update({'visual.transformer.resblocks.0.attn.gate': torch.ones(1)}),
     r'unexpected.*resblocks\.0\.attn\.gate'),
    (lambda sd: sd.pop('visual.transformer.resblocks.2.mlp.c_fc.bias'),
     r'missing.*layers\.2\.ffn\.layers\.0\.0\.bias'),
    (lambda sd: sd.update({'visual.ln_post.weight': torch.ones(7)}), r'ln1\.weight: \(7,\)'),
    (lambda sd: sd.update({'bert.embeddings.word_embeddings.weight': torch.ones(1)}),
     r'only the `visual\.\*`'),
    (lambda sd: sd.pop('visual.proj'), r'`proj`'),
])
def test_convert_rejects_bad_vit_weights(edit, message):
    state_dict = {f'visual.{k}': v
                  for k, v in VisualTransformer(**TINY_VIT_CNCLIP).state_dict().items()}
    edit(state_dict)
    with pytest.raises(KeyError, match=message):
        convert_visual_weights(state_dict)


def test_convert_rejects_unknown_weights():
    with pytest.raises(KeyError, match='cannot tell the image encoder'):
        convert_visual_weights({'conv1.weight': torch.ones(1)})
    reference = ModifiedResNet(**TINY_RN_CNCLIP).state_dict()
    reference['layer1.0.extra.weight'] = torch.ones(1)
    with pytest.raises(KeyError, match=r'unexpected.*layer1\.0\.extra\.weight'):
        convert_visual_weights(reference)


# ---------------------------------------------------------- registries and init_cfg


@pytest.mark.parametrize('registry, scope', [(MODELS, 'mmpretrain'), (SEG_MODELS, 'mmseg')])
def test_backbones_build_from_both_registries(registry, scope):
    with DefaultScope.overwrite_default_scope(scope):
        vit = registry.build(dict(type='ViLReFViT', arch=TINY_VIT, img_size=112))
        resnet = registry.build(dict(type='ViLReFModifiedResNet', base_channels=8, num_heads=4))
    assert isinstance(vit, ViLReFViT) and isinstance(resnet, ViLReFModifiedResNet)
    assert isinstance(vit.layers[0].ffn.layers[0][1], QuickGELU)


def test_vit_featmaps_feed_an_mmseg_neck():
    with DefaultScope.overwrite_default_scope('mmseg'):
        backbone = SEG_MODELS.build(
            dict(type='ViLReFViT', arch=TINY_VIT, img_size=112, out_type='featmap',
                 out_indices=(0, 1, 2, 3)))
        neck = SEG_MODELS.build(
            dict(type='MultiLevelNeck', in_channels=[192] * 4, out_channels=32,
                 scales=[4, 2, 1, 0.5]))
    with torch.no_grad():
        outs = neck(backbone.eval()(torch.randn(1, 3, 128, 96)))
    assert [out.shape for out in outs] == [(1, 32, 32, 24), (1, 32, 16, 12), (1, 32, 8, 6),
                                           (1, 32, 4, 3)]


@pytest.mark.parametrize('reference, overrides', [
    (lambda: VisualTransformer(**TINY_VIT_CNCLIP), {}),
    (lambda: ModifiedResNet(**TINY_RN_CNCLIP), {}),
    # segmentation crop: the position embeddings are resized when loading
    (lambda: VisualTransformer(**TINY_VIT_CNCLIP),
     dict(img_size=224, out_type='featmap', out_indices=(1, 3))),
])
def test_pretrained_init_cfg_loads_converted_weights(tmp_path, reference, overrides):
    weights = convert_visual_weights(release_visual_state_dict(reference()))
    path = tmp_path / 'converted.pth'
    torch.save({'state_dict': {f'image_encoder.{k}': v for k, v in weights.state_dict.items()}},
               path)
    cfg = {**weights.backbone_cfg, **overrides}
    model = MODELS.build(
        dict(cfg, init_cfg=dict(type='Pretrained', checkpoint=str(path), prefix='image_encoder.')))
    model.init_weights()
    loaded = model.state_dict()
    assert loaded.keys() == weights.state_dict.keys()
    for key, value in weights.state_dict.items():
        if key == 'pos_embed' and overrides:
            assert loaded[key].shape == (1, 1 + 14 * 14, 192)
            torch.testing.assert_close(loaded[key][:, 0], value[:, 0])
        else:
            torch.testing.assert_close(loaded[key], value, rtol=0, atol=0, msg=key)
