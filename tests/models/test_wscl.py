"""Tests of the Weighted Similarity Coupling Loss against method.md."""
import math

import pytest
import torch
import torch.nn.functional as F
from mmpretrain.registry import MODELS

from vilref_mm.models.losses import WeightedSimilarityCouplingLoss

BINARY_LABELS = [
    [1, 0, 1, 0, 0],
    [1, 0, 1, 0, 0],  # duplicate of sample 0: a false negative
    [0, 0, 0, 0, 0],  # unlabelled: an ordinary negative
    [0, 1, 0, 0, 0],
    [0, 0, 0, 0, 0],  # unlabelled, even against the other unlabelled sample
    [1, 1, 1, 0, 0],
]
BINARY_QUEUE_LABELS = [
    [1, 0, 1, 0, 0],  # duplicate of samples 0 and 1
    [0, 0, 0, 0, 0],
    [0, 1, 0, 0, 1],
    [0, 1, 0, 0, 0],  # duplicate of sample 3
]
SOFT_LABELS = [
    [1.0, 0.0, 0.5, 0.0, 0.0],
    [0.5, 0.0, 0.25, 0.0, 0.0],  # parallel to sample 0: cosine 1, eliminated
    [0.5, 0.5, 0.0, 0.0, 0.0],
    [0.0, 0.0, 0.0, 0.0, 0.0],
    [0.2, 0.9, 0.0, 0.5, 0.0],
    [1.0, 0.0, 0.5, 0.0, 0.0],  # duplicate of sample 0
]
SOFT_QUEUE_LABELS = [
    [0.4, 0.4, 0.0, 0.0, 0.0],  # parallel to sample 2
    [0.0, 0.0, 0.0, 0.0, 0.0],
    [0.3, 0.0, 0.7, 0.1, 0.9],
    [1.0, 0.0, 0.5, 0.0, 0.0],
]


def reference_wscl(image_feats, text_feats, labels, scale, queue=None,
                   gamma=1.0, hard=False):
    """WSCL exactly as written in method.md, with explicit loops."""

    def label_cosine(y_a, y_b):
        norm_a, norm_b = float(y_a.norm()), float(y_b.norm())
        if norm_a == 0 or norm_b == 0:
            return 0.0
        return float(y_a @ y_b) / (norm_a * norm_b)

    def weight(y_a, y_b):
        a = label_cosine(y_a, y_b)
        if hard:
            return 0.0 if a >= 1 - 1e-6 else 1.0
        if gamma == 0:
            return 1.0
        return 0.0 if a >= 1 - 1e-6 else (1 - a)**gamma

    def direction(anchors, candidates, queue_candidates, queue_labels):
        total = 0
        for i in range(len(anchors)):
            positive = torch.exp(scale * torch.dot(anchors[i], candidates[i]))
            denominator = positive
            for j in range(len(candidates)):
                if j != i:
                    denominator = denominator + weight(
                        labels[i], labels[j]) * torch.exp(
                            scale * torch.dot(anchors[i], candidates[j]))
            for k in range(len(queue_candidates)):
                denominator = denominator + weight(
                    labels[i], queue_labels[k]) * torch.exp(
                        scale * torch.dot(anchors[i], queue_candidates[k]))
            total = total - torch.log(positive / denominator)
        return total / len(anchors)

    queue_image_feats, queue_text_feats, queue_labels = (
        queue if queue is not None else ([], [], []))
    return (direction(image_feats, text_feats, queue_text_feats, queue_labels)
            + direction(text_feats, image_feats, queue_image_feats,
                        queue_labels)) / 2


def make_inputs(labels, queue_labels=None, dim=8, seed=0,
                dtype=torch.float64):
    """Normalised leaf features, labels, a leaf scale and an optional queue."""
    generator = torch.Generator().manual_seed(seed)

    def normalised(rows):
        return F.normalize(
            torch.randn(rows, dim, generator=generator, dtype=dtype), dim=1)

    labels = torch.tensor(labels, dtype=dtype)
    image_feats = normalised(len(labels)).requires_grad_()
    text_feats = normalised(len(labels)).requires_grad_()
    scale = torch.tensor(7.5, dtype=dtype, requires_grad=True)
    queue = None
    if queue_labels is not None:
        queue = (normalised(len(queue_labels)), normalised(len(queue_labels)),
                 torch.tensor(queue_labels, dtype=dtype))
    return image_feats, text_feats, labels, scale, queue


def loss_and_grads(loss_fn, image_feats, text_feats, labels, scale, queue):
    queue = queue if queue is not None else ()
    loss = loss_fn(image_feats, text_feats, labels, scale, *queue)
    grads = torch.autograd.grad(loss, (image_feats, text_feats, scale))
    return loss, grads


@pytest.mark.parametrize('gamma', [0.0, 0.5, 1.0, 2.0])
@pytest.mark.parametrize('hard', [False, True])
@pytest.mark.parametrize('with_queue', [False, True])
@pytest.mark.parametrize('label_kind', ['binary', 'soft'])
def test_matches_reference(gamma, hard, with_queue, label_kind):
    labels, queue_labels = ((BINARY_LABELS, BINARY_QUEUE_LABELS)
                            if label_kind == 'binary' else
                            (SOFT_LABELS, SOFT_QUEUE_LABELS))
    inputs = make_inputs(labels, queue_labels if with_queue else None)
    loss, grads = loss_and_grads(
        WeightedSimilarityCouplingLoss(gamma=gamma, hard=hard), *inputs)
    expected_loss, expected_grads = loss_and_grads(
        lambda *args: reference_wscl(*args[:4], queue=inputs[4], gamma=gamma,
                                     hard=hard), *inputs)
    assert loss.dtype == torch.float64
    torch.testing.assert_close(loss, expected_loss, rtol=1e-10, atol=0)
    for grad, expected_grad in zip(grads, expected_grads):
        torch.testing.assert_close(grad, expected_grad, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize('with_queue', [False, True])
def test_gamma_zero_is_clip_infonce(with_queue):
    image_feats, text_feats, labels, scale, queue = make_inputs(
        BINARY_LABELS, BINARY_QUEUE_LABELS if with_queue else None)
    image_candidates, text_candidates = image_feats, text_feats
    if with_queue:
        image_candidates = torch.cat([image_feats, queue[0]])
        text_candidates = torch.cat([text_feats, queue[1]])
    targets = torch.arange(len(labels))
    expected = (
        F.cross_entropy(scale * image_feats @ text_candidates.t(), targets) +
        F.cross_entropy(scale * text_feats @ image_candidates.t(), targets)) / 2
    loss_fn = WeightedSimilarityCouplingLoss(gamma=0.0)
    loss = loss_fn(image_feats, text_feats, labels, scale,
                   *(queue if with_queue else ()))
    torch.testing.assert_close(loss, expected, rtol=1e-12, atol=0)
    assert float(loss_fn.log_vars['eliminated']) == 0.0


def test_eliminated_queue_entries_have_no_effect():
    labels = [[1, 0, 1, 0, 0]] * 3  # every anchor has the same findings
    queue_labels = [[2, 0, 2, 0, 0], [0, 1, 0, 0, 0], [0, 0, 0, 0, 0]]
    _, _, labels, scale, _ = inputs = make_inputs(labels, queue_labels)
    image_feats, text_feats = (feats.detach() for feats in inputs[:2])
    queue_image_feats, queue_text_feats, queue_labels = (
        feats.clone().requires_grad_() for feats in inputs[4])
    loss_fn = WeightedSimilarityCouplingLoss(gamma=1.0)
    loss = loss_fn(image_feats, text_feats, labels, scale, queue_image_feats,
                   queue_text_feats, queue_labels)
    grads = torch.autograd.grad(loss, (queue_image_feats, queue_text_feats))
    for grad in grads:
        assert torch.isfinite(grad).all()
        assert torch.equal(grad[0], torch.zeros_like(grad[0]))  # eliminated
        assert grad[1:].abs().min() > 0  # ordinary negatives are pushed
    moved_image_feats = queue_image_feats.detach().clone()
    moved_text_feats = queue_text_feats.detach().clone()
    moved_image_feats[0] = image_feats[0]
    moved_text_feats[0] = text_feats[0]
    moved_loss = loss_fn(image_feats, text_feats, labels, scale,
                         moved_image_feats, moved_text_feats, queue_labels)
    assert torch.equal(moved_loss, loss.detach())


@pytest.mark.parametrize('gamma,hard', [(1.0, False), (2.0, False),
                                        (0.0, True)])
def test_identical_labels_give_zero_loss_and_zero_grads(gamma, hard):
    inputs = make_inputs([[0.0, 1.0, 0.3]] * 4)
    loss_fn = WeightedSimilarityCouplingLoss(gamma=gamma, hard=hard)
    loss, grads = loss_and_grads(loss_fn, *inputs)
    assert float(loss.detach()) == 0.0
    for grad in grads:
        assert torch.equal(grad, torch.zeros_like(grad))
    assert float(loss_fn.log_vars['eliminated']) == 1.0


def test_unlabelled_samples_are_ordinary_negatives():
    image_feats, text_feats, labels, scale, queue = make_inputs(
        [[0, 0, 0]] * 4, [[0, 0, 0]] * 2)
    loss_fn = WeightedSimilarityCouplingLoss(gamma=2.0)
    loss = loss_fn(image_feats, text_feats, labels, scale, *queue)
    clip_loss = WeightedSimilarityCouplingLoss(gamma=0.0)(
        image_feats, text_feats, labels, scale, *queue)
    torch.testing.assert_close(loss, clip_loss, rtol=1e-12, atol=0)
    assert float(loss_fn.log_vars['eliminated']) == 0.0


@pytest.mark.parametrize('gamma,hard,share', [(1.0, False, 4 / 30),
                                              (0.0, True, 4 / 30),
                                              (0.0, False, 0.0)])
def test_eliminated_share(gamma, hard, share):
    labels = [[1, 0], [1, 0], [0, 1], [0, 1], [1, 1], [0, 0]]
    inputs = make_inputs(labels, [[1, 0]] * 3)  # the queue is not counted
    loss_fn = WeightedSimilarityCouplingLoss(gamma=gamma, hard=hard)
    loss_fn(*inputs[:4], *inputs[4])
    assert isinstance(loss_fn.log_vars['eliminated'], torch.Tensor)
    assert not loss_fn.log_vars['eliminated'].requires_grad
    assert math.isclose(
        float(loss_fn.log_vars['eliminated']), share, rel_tol=1e-6)


def test_bf16_autocast_computes_in_float32():
    generator = torch.Generator().manual_seed(0)
    encoder = torch.nn.Linear(16, 8)
    inputs = torch.randn(2, 6, 16, generator=generator)
    labels = torch.tensor(BINARY_LABELS, dtype=torch.float32)
    logit_scale = torch.nn.Parameter(torch.tensor(math.log(1 / 0.07)))
    loss_fn = WeightedSimilarityCouplingLoss(gamma=1.0)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        image_feats = F.normalize(encoder(inputs[0]), dim=1)
        text_feats = F.normalize(encoder(inputs[1]), dim=1)
        assert image_feats.dtype == torch.bfloat16
        loss = loss_fn(image_feats, text_feats, labels, logit_scale.exp())
    assert loss.dtype == torch.float32
    # The same bf16 features, computed on in float32 outside autocast.
    torch.testing.assert_close(
        loss,
        loss_fn(image_feats.float(), text_feats.float(), labels,
                logit_scale.exp()))
    fp32_loss = loss_fn(
        F.normalize(encoder(inputs[0]), dim=1),
        F.normalize(encoder(inputs[1]), dim=1), labels, logit_scale.exp())
    torch.testing.assert_close(loss, fp32_loss, rtol=2e-2, atol=0)
    loss.backward()
    assert torch.isfinite(logit_scale.grad)
    assert all(torch.isfinite(p.grad).all() for p in encoder.parameters())


def test_empty_queue_equals_no_queue():
    image_feats, text_feats, labels, scale, _ = make_inputs(BINARY_LABELS)
    empty_queue = (torch.zeros(0, 8, dtype=torch.float64),
                   torch.zeros(0, 8, dtype=torch.float64),
                   torch.zeros(0, 5, dtype=torch.float64))
    loss_fn = WeightedSimilarityCouplingLoss(gamma=1.0)
    torch.testing.assert_close(
        loss_fn(image_feats, text_feats, labels, scale, *empty_queue),
        loss_fn(image_feats, text_feats, labels, scale),
        rtol=0, atol=0)


def test_loss_weight_scales_the_loss():
    inputs = make_inputs(BINARY_LABELS)
    torch.testing.assert_close(
        WeightedSimilarityCouplingLoss(loss_weight=0.5)(*inputs[:4]),
        0.5 * WeightedSimilarityCouplingLoss()(*inputs[:4]))


def test_registered_in_mmpretrain_models():
    loss_fn = MODELS.build(
        dict(type='WeightedSimilarityCouplingLoss', gamma=2.0, hard=True))
    assert isinstance(loss_fn, WeightedSimilarityCouplingLoss)
    assert (loss_fn.gamma, loss_fn.hard) == (2.0, True)


def test_invalid_arguments():
    with pytest.raises(ValueError, match='gamma must be >= 0'):
        WeightedSimilarityCouplingLoss(gamma=-1.0)
    image_feats, text_feats, labels, scale, queue = make_inputs(
        BINARY_LABELS, BINARY_QUEUE_LABELS)
    with pytest.raises(ValueError, match='together'):
        WeightedSimilarityCouplingLoss()(image_feats, text_feats, labels,
                                         scale, queue[0], queue[1])
