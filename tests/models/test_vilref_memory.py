"""ViLReF's batch expansion: momentum towers, the queue in the loss, checkpoints without them."""
import copy

import pytest
import torch
import torch.nn.functional as F
from mmengine.runner.checkpoint import load_state_dict

import vilref_mm.models  # noqa: F401  registers the modules
from mmpretrain.registry import MODELS

TINY_BERT = dict(hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                 intermediate_size=64, hidden_dropout_prob=0., attention_probs_dropout_prob=0.)
TINY_MODEL = dict(
    type='ViLReF',
    image_encoder=dict(
        type='ViLReFViT',
        arch=dict(embed_dims=32, num_layers=1, num_heads=2, feedforward_channels=64),
        img_size=32,
        patch_size=16),
    text_encoder=dict(type='ChineseBertEncoder', bert_cfg=TINY_BERT),
    embed_dims=16,
    num_classes=3,
    tokenizer=dict(type='ChineseBertTokenizer', context_length=12))


def tiny_model(queue_size: int = 8):
    torch.manual_seed(0)
    model = MODELS.build({**TINY_MODEL, 'queue_size': queue_size})
    model.init_weights()
    return model


def batch(seed: int, n: int = 4) -> dict:
    generator = torch.Generator().manual_seed(seed)
    ids = torch.randint(1000, 5000, (n, 12), generator=generator)
    ids[:, 0] = 101
    return {
        'images': torch.randn(n, 3, 32, 32, generator=generator),
        'text_ids': ids,
        'labels': (torch.rand(n, 3, generator=generator) > 0.5).float(),
    }


def _pairs(model):
    return model._momentum_pairs() + model._momentum_pairs(buffers=True)


def test_momentum_towers_start_as_copies_and_follow_the_ema():
    model = tiny_model()
    pairs = _pairs(model)
    assert pairs and all(torch.equal(online, momentum) for online, momentum in pairs)
    assert not any(p.requires_grad for p in model.momentum_image_encoder.parameters())
    assert not any(p.requires_grad for p in model.momentum_text_encoder.parameters())

    old = [momentum.clone() for _, momentum in model._momentum_pairs()]
    with torch.no_grad():
        for online, _ in model._momentum_pairs():
            online.add_(torch.randn_like(online))
    model.momentum_update(0.9)
    for (online, momentum), before in zip(model._momentum_pairs(), old):
        torch.testing.assert_close(momentum, 0.9 * before + 0.1 * online)


def test_loss_uses_the_momentum_features_of_earlier_batches():
    model = tiny_model(queue_size=8)
    first = batch(0)
    out = model.loss(first)
    assert model.memory_queue.fill == 0 and float(out['queue_fill']) == 0.0
    expected_queue = (*model.extract_momentum_feats(first['images'], first['text_ids']),
                      first['labels'])
    model.enqueue_momentum_batch()
    assert model.memory_queue.fill == 4

    second = batch(1)
    loss = model.loss(second)['loss']
    image = model.extract_image_feat(second['images'])
    text = model.extract_text_feat(second['text_ids'])
    reference = model.loss_module(image, text, second['labels'], model.logit_scale.exp(),
                                  *expected_queue)
    torch.testing.assert_close(loss, reference)
    without_queue = model.loss_module(image, text, second['labels'], model.logit_scale.exp())
    assert not torch.allclose(loss, without_queue)
    # Only the online towers receive gradients.
    loss.backward()
    assert model.image_projection.grad is not None
    assert all(p.grad is None for p in model.momentum_text_encoder.parameters())


def test_no_momentum_pass_while_the_queue_warms_up(monkeypatch):
    model = tiny_model(queue_size=8)
    model.encode_momentum_batch = False
    monkeypatch.setattr(model, 'extract_momentum_feats',
                        lambda *inputs: pytest.fail('momentum towers run during warm-up'))
    model.loss(batch(0))
    model.enqueue_momentum_batch()
    assert model.memory_queue.fill == 0


def test_logit_scale_is_clamped_before_use():
    model = tiny_model()
    with torch.no_grad():
        model.logit_scale.fill_(10.0)
    out = model.loss(batch(0))
    assert model.logit_scale.item() == pytest.approx(model.max_logit_scale)
    assert float(out['logit_scale']) == pytest.approx(100.0)


def test_checkpoint_without_momentum_state_builds_the_towers_from_it():
    plain = tiny_model(queue_size=0)
    with torch.no_grad():
        for param in plain.parameters():
            param.add_(1.0)
    model = tiny_model(queue_size=8)
    model.loss(batch(0))
    model.enqueue_momentum_batch()
    # A released/converted checkpoint: online weights only; strict loading must accept it.
    load_state_dict(model, plain.state_dict(), strict=True)
    model.load_state_dict(plain.state_dict(), strict=True)
    for name, param in plain.state_dict().items():
        torch.testing.assert_close(model.state_dict()[name], param)
    assert all(torch.equal(online, momentum) for online, momentum in _pairs(model))


def test_full_state_dict_round_trip_keeps_momentum_and_queue():
    model = tiny_model(queue_size=8)
    model.loss(batch(0))
    model.enqueue_momentum_batch()
    model.momentum_update(0.5)
    with torch.no_grad():
        model.momentum_text_projection.add_(1.0)
    restored = tiny_model(queue_size=8)
    restored.load_state_dict(copy.deepcopy(model.state_dict()), strict=True)
    assert restored.memory_queue.fill == 4
    for key, value in model.state_dict().items():
        assert torch.equal(restored.state_dict()[key], value), key


def test_without_queue_the_loss_is_plain_wscl():
    model = tiny_model(queue_size=0)
    assert model.memory_queue is None and not hasattr(model, 'momentum_image_encoder')
    data = batch(0)
    loss = model.loss(data)['loss']
    image = F.normalize(model.encode_image(data['images']), dim=-1)
    text = F.normalize(model.encode_text(data['text_ids']), dim=-1)
    torch.testing.assert_close(
        loss, model.loss_module(image, text, data['labels'], model.logit_scale.exp()))


def test_label_length_must_match_the_queue():
    model = tiny_model()
    data = batch(0)
    data['labels'] = torch.zeros(4, 5)
    with pytest.raises(ValueError, match='model.num_classes'):
        model.loss(data)


def test_predict_scores_every_class_with_the_prompts():
    from mmpretrain.structures import DataSample
    torch.manual_seed(0)
    model = MODELS.build({**TINY_MODEL, 'zero_shot': dict(class_names=['hemorrhage', 'drusen'])})
    samples = [DataSample().set_gt_score(torch.tensor([1., 0.])) for _ in range(4)]
    out = model(batch(0)['images'], samples, mode='predict')
    scores = torch.stack([sample.pred_score for sample in out])
    assert scores.shape == (4, 2) and ((scores > 0) & (scores < 1)).all()


def test_ddp_ignores_the_momentum_towers_and_the_queue():
    """Every rank updates them itself; DDP must not broadcast them."""
    model = tiny_model(queue_size=8)
    ignored = set(model._ddp_params_and_buffers_to_ignore)
    names = [name for name, _ in [*model.named_parameters(), *model.named_buffers()]]
    expected = {name for name in names if name.startswith(('momentum_', 'memory_queue.'))}
    assert ignored == expected and len(expected) > 10
    assert 'memory_queue.image_feats' in ignored and 'momentum_text_projection' in ignored
    assert not any(name.startswith(('image_encoder.', 'text_encoder.')) for name in ignored)


@pytest.mark.parametrize('momentum_eval', [False, True])
def test_momentum_eval_encodes_without_dropout_and_flip(momentum_eval):
    torch.manual_seed(0)
    model = MODELS.build({
        **TINY_MODEL, 'queue_size': 8, 'momentum_eval': momentum_eval,
        'image_encoder': {**TINY_MODEL['image_encoder'], 'mask_ratio': 0.5,
                          'drop_path_rate': 0.2},
        'text_encoder': dict(type='ChineseBertEncoder', bert_cfg={
            **TINY_BERT, 'hidden_dropout_prob': 0.3, 'attention_probs_dropout_prob': 0.3})})
    model.init_weights()
    data = batch(0)
    model.eval()
    evaluated = model.extract_momentum_feats(data['images'], data['text_ids'])
    model.train()
    first, second = (model.extract_momentum_feats(data['images'], data['text_ids'])
                     for _ in range(2))
    # The online towers train either way: dropout and FLIP make two passes differ.
    assert model.image_encoder.training and model.text_encoder.training
    assert not torch.allclose(model.extract_image_feat(data['images']),
                              model.extract_image_feat(data['images']))
    assert not torch.allclose(model.extract_text_feat(data['text_ids']),
                              model.extract_text_feat(data['text_ids']))
    assert model.momentum_image_encoder.training is not momentum_eval
    assert model.momentum_text_encoder.training is not momentum_eval
    for index in range(2):  # image, then text features
        if momentum_eval:
            assert torch.equal(first[index], second[index])
            torch.testing.assert_close(first[index], evaluated[index], rtol=0, atol=0)
        else:
            assert not torch.allclose(first[index], second[index])
    if momentum_eval:  # the features the queue receives
        model.loss(data)
        for queued, expected in zip(model._momentum_batch, evaluated):
            assert torch.equal(queued, expected)


def test_loss_passes_momentum_feats_to_a_loss_that_needs_them():
    torch.manual_seed(0)
    model = MODELS.build({**TINY_MODEL, 'queue_size': 8, 'loss': dict(
        type='MomentumDistillationLoss', ramp_iters=0, alpha=0.4, gamma=1.0)})
    model.init_weights()
    model.loss(batch(0))
    model.enqueue_momentum_batch()
    model.momentum_update(0.5)
    with torch.no_grad():
        for param in model.momentum_text_encoder.parameters():
            param.add_(0.01 * torch.randn_like(param))
    # During the queue's warm-up the loss still gets the momentum features; nothing is
    # enqueued.
    model.encode_momentum_batch = False
    data = batch(1)
    out = model.loss(data)
    momentum_image_feats, momentum_text_feats = model.extract_momentum_feats(
        data['images'], data['text_ids'])
    args = (model.extract_image_feat(data['images']), model.extract_text_feat(data['text_ids']),
            data['labels'], model.logit_scale.exp(), *model.memory_queue.filled())
    expected = model.loss_module(*args, momentum_image_feats=momentum_image_feats,
                                 momentum_text_feats=momentum_text_feats)
    torch.testing.assert_close(out['loss'], expected, rtol=1e-6, atol=0)
    other_teacher = model.loss_module(*args, momentum_image_feats=momentum_text_feats,
                                      momentum_text_feats=momentum_image_feats)
    assert not torch.allclose(out['loss'], other_teacher)
    assert float(out['distill_alpha']) == pytest.approx(0.4)
    model.enqueue_momentum_batch()
    assert model.memory_queue.fill == 4


def test_a_loss_needing_momentum_feats_needs_a_queue():
    with pytest.raises(ValueError, match='queue_size > 0'):
        MODELS.build({**TINY_MODEL, 'loss': dict(type='MomentumDistillationLoss',
                                                 ramp_iters=10)})


def test_the_loss_modules_logged_values_join_the_losses():
    model = tiny_model(queue_size=8)
    out = model.loss(batch(0))
    assert set(out) == {'loss', 'queue_fill', 'logit_scale', 'i2t', 't2i', 'eliminated',
                        'eliminated_queue', 'mean_weight'}
    assert all(isinstance(value, torch.Tensor) for value in out.values())
    torch.testing.assert_close((out['i2t'] + out['t2i']) / 2, out['loss'].detach())
    loss, log_vars = model.parse_losses(out)
    assert torch.equal(loss, out['loss'])  # the logged values are not added to the loss
    assert set(log_vars) == set(out)
