"""The contrastive losses for ablation against float64 references written from their
definitions (docs/method.md), with explicit loops."""
import math

import pytest
import torch
import torch.nn.functional as F
from mmengine.logging import MessageHub
from mmpretrain.registry import MODELS

from vilref_mm.models.losses import (LabelSoftTargetLoss, MomentumDistillationLoss,
                                     WeightedSimilarityCouplingLoss)
from vilref_mm.models.losses.wscl import label_similarity

# Soft labels: uncertain findings (0.5) next to certain ones (1.0) of the same class.
LABELS = [
    [1.0, 0.0, 0.5, 0.0],
    [0.5, 0.0, 0.25, 0.0],  # parallel to sample 0: cosine 1, soft Jaccard 0.5
    [1.0, 0.0, 0.5, 0.0],  # identical to sample 0: eliminated by both similarities
    [0.0, 0.0, 0.0, 0.0],  # unlabelled
    [0.0, 1.0, 0.0, 0.5],
    [0.2, 0.9, 0.0, 0.5],
]
QUEUE_LABELS = [
    [1.0, 0.0, 0.5, 0.0],
    [0.0, 0.0, 0.0, 0.0],
    [0.0, 0.5, 0.0, 0.25],  # parallel to sample 4
    [0.3, 0.0, 0.7, 0.1],
]
DIM = 8


def similarity(y_a, y_b, kind):
    """Label similarity from its definition; 0 for an all-zero vector."""
    if kind == 'cosine':
        norm_a, norm_b = float(y_a.norm()), float(y_b.norm())
        return 0.0 if norm_a == 0 or norm_b == 0 else float(y_a @ y_b) / (norm_a * norm_b)
    highest = sum(max(a, b) for a, b in zip(y_a.tolist(), y_b.tolist()))
    lowest = sum(min(a, b) for a, b in zip(y_a.tolist(), y_b.tolist()))
    return 0.0 if highest == 0 else lowest / highest


def pair_weight(a, gamma, hard):
    """method.md: w = (1 - a) ** gamma, 0 from a >= 1 - 1e-6 when gamma > 0 or hard."""
    if (hard or gamma > 0) and a >= 1 - 1e-6:
        return 0.0
    return 1.0 if hard else (1 - a)**gamma


def reference(kind, image_feats, text_feats, labels, scale, queue=None, momentum=None,
              gamma=1.0, hard=False, kind_similarity='cosine', label_smoothing=0.0,
              one_hot_weight=0.0, alpha=0.0):
    """The loss and the logged values of ``kind`` ('wscl', 'soft' or 'distill'), one anchor
    and one candidate at a time: ``-sum_j q_ij log p_ij`` with
    ``p_ij = w_ij exp(s a_i.c_j) / sum_k w_ik exp(s a_i.c_k)``."""
    queue_image, queue_text, queue_labels = queue if queue is not None else ([], [], [])
    candidate_labels = list(labels) + list(queue_labels)
    size, num_candidates = len(labels), len(candidate_labels)

    def weights(i):
        if kind == 'soft':
            return [1.0] * num_candidates
        return [1.0 if j == i else pair_weight(
            similarity(labels[i], candidate_labels[j], kind_similarity), gamma, hard)
            for j in range(num_candidates)]

    def probabilities(anchor, candidates, row_weights, row_scale):
        terms = [w * torch.exp(row_scale * torch.dot(anchor, c))
                 for w, c in zip(row_weights, candidates)]
        total = sum(terms)
        return [term / total for term in terms]

    def targets(i, row_weights, teacher):
        if kind == 'soft':
            agreement = [1.0 if j == i else similarity(labels[i], candidate_labels[j],
                                                       kind_similarity)
                         for j in range(num_candidates)]
            return [(1 - one_hot_weight) * a / sum(agreement) + one_hot_weight * (j == i)
                    for j, a in enumerate(agreement)]
        kept = sum(w > 0 for w in row_weights)
        truth = [label_smoothing / kept * (w > 0) + (1 - label_smoothing) * (j == i)
                 for j, w in enumerate(row_weights)]
        if teacher is None:
            return truth
        return [alpha * float(t) + (1 - alpha) * g for t, g in zip(teacher, truth)]

    def direction(anchors, candidates, queue_candidates, momentum_anchors,
                  momentum_candidates):
        total = 0
        for i in range(size):
            row_weights = weights(i)
            p = probabilities(anchors[i], list(candidates) + list(queue_candidates),
                              row_weights, scale)
            teacher = None
            if momentum is not None:
                with torch.no_grad():
                    teacher = probabilities(
                        momentum_anchors[i],
                        list(momentum_candidates) + list(queue_candidates), row_weights,
                        scale.detach())
            q = targets(i, row_weights, teacher)
            total = total - sum(q_j * torch.log(p_j) for q_j, p_j in zip(q, p) if q_j > 0)
        return total / size

    momentum_image, momentum_text = momentum if momentum is not None else (None, None)
    i2t = direction(image_feats, text_feats, queue_text, momentum_image, momentum_text)
    t2i = direction(text_feats, image_feats, queue_image, momentum_text, momentum_image)

    all_weights = [weights(i) for i in range(size)]
    negatives = [w for i, row in enumerate(all_weights) for j, w in enumerate(row) if j != i]
    log_vars = dict(
        i2t=float(i2t.detach()), t2i=float(t2i.detach()),
        eliminated=sum(row[j] == 0 for i, row in enumerate(all_weights)
                       for j in range(size) if j != i) / (size * (size - 1)),
        mean_weight=sum(negatives) / len(negatives))
    if queue is not None:
        log_vars['eliminated_queue'] = sum(
            w == 0 for row in all_weights for w in row[size:]) / max(size * len(queue_labels),
                                                                     1)
    return (i2t + t2i) / 2, log_vars


def make_inputs(with_queue, seed=0):
    """Normalised leaf features, labels, a leaf scale, a queue and momentum features."""
    generator = torch.Generator().manual_seed(seed)

    def normalised(rows):
        return F.normalize(torch.randn(rows, DIM, generator=generator, dtype=torch.float64),
                           dim=1)

    labels = torch.tensor(LABELS, dtype=torch.float64)
    image_feats = normalised(len(labels)).requires_grad_()
    text_feats = normalised(len(labels)).requires_grad_()
    scale = torch.tensor(6.5, dtype=torch.float64, requires_grad=True)
    queue = None
    if with_queue:
        queue = (normalised(len(QUEUE_LABELS)), normalised(len(QUEUE_LABELS)),
                 torch.tensor(QUEUE_LABELS, dtype=torch.float64))
    momentum = (normalised(len(labels)), normalised(len(labels)))
    return image_feats, text_feats, labels, scale, queue, momentum


@pytest.fixture
def iteration(monkeypatch):
    """Set the training iteration the losses read from the current MessageHub."""
    hub = MessageHub('loss_zoo_test')
    monkeypatch.setattr(MessageHub, 'get_current_instance', classmethod(lambda cls: hub))

    def set_iteration(value):
        hub.update_info('iter', value)

    return set_iteration


def check_against_reference(loss_fn, ref_kwargs, with_queue, pass_momentum=False):
    image_feats, text_feats, labels, scale, queue, momentum = make_inputs(with_queue)
    extra = {}
    if pass_momentum:
        extra = dict(momentum_image_feats=momentum[0], momentum_text_feats=momentum[1])
    loss = loss_fn(image_feats, text_feats, labels, scale, *(queue or ()), **extra)
    expected, expected_log_vars = reference(
        image_feats=image_feats, text_feats=text_feats, labels=labels, scale=scale,
        queue=queue, momentum=momentum if pass_momentum else None, **ref_kwargs)
    leaves = (image_feats, text_feats, scale)
    grads = torch.autograd.grad(loss, leaves)
    expected_grads = torch.autograd.grad(expected, leaves)
    assert loss.dtype == torch.float64
    torch.testing.assert_close(loss, expected, rtol=1e-10, atol=0)
    for grad, expected_grad in zip(grads, expected_grads):
        torch.testing.assert_close(grad, expected_grad, rtol=1e-9, atol=1e-12)
    log_vars = loss_fn.log_vars
    assert set(expected_log_vars) <= set(log_vars)
    for key, value in expected_log_vars.items():
        assert isinstance(log_vars[key], torch.Tensor) and not log_vars[key].requires_grad
        # The eliminated shares are ratios of counts in the default dtype (float32).
        rel_tol = 1e-6 if key.startswith('eliminated') else 1e-9
        assert math.isclose(float(log_vars[key]), value, rel_tol=rel_tol, abs_tol=1e-12), key
    assert not any('loss' in key for key in log_vars)  # parse_losses would add them


@pytest.mark.parametrize('with_queue', [False, True])
@pytest.mark.parametrize('gamma,hard', [(0.0, False), (1.0, False), (2.0, False),
                                        (0.0, True)])
@pytest.mark.parametrize('kind_similarity', ['cosine', 'soft_jaccard'])
@pytest.mark.parametrize('label_smoothing', [0.0, 0.1])
def test_wscl_matches_reference(with_queue, gamma, hard, kind_similarity, label_smoothing):
    loss_fn = WeightedSimilarityCouplingLoss(gamma=gamma, hard=hard,
                                             similarity=kind_similarity,
                                             label_smoothing=label_smoothing)
    check_against_reference(
        loss_fn, dict(kind='wscl', gamma=gamma, hard=hard, kind_similarity=kind_similarity,
                      label_smoothing=label_smoothing), with_queue)


@pytest.mark.parametrize('with_queue', [False, True])
@pytest.mark.parametrize('kind_similarity', ['cosine', 'soft_jaccard'])
@pytest.mark.parametrize('one_hot_weight', [0.0, 0.3, 1.0])
def test_soft_targets_match_reference(with_queue, kind_similarity, one_hot_weight):
    loss_fn = LabelSoftTargetLoss(similarity=kind_similarity, one_hot_weight=one_hot_weight)
    check_against_reference(
        loss_fn, dict(kind='soft', kind_similarity=kind_similarity,
                      one_hot_weight=one_hot_weight), with_queue)


@pytest.mark.parametrize('with_queue', [False, True])
@pytest.mark.parametrize('gamma', [0.0, 1.0])
@pytest.mark.parametrize('label_smoothing', [0.0, 0.1])
@pytest.mark.parametrize('step,alpha_t', [(0, 0.0), (5, 0.2), (10, 0.4), (30, 0.4),
                                          (None, 0.4)])
def test_momentum_distillation_matches_reference(iteration, with_queue, gamma,
                                                 label_smoothing, step, alpha_t):
    iteration(step)
    loss_fn = MomentumDistillationLoss(ramp_iters=10, alpha=0.4, gamma=gamma,
                                       label_smoothing=label_smoothing)
    assert loss_fn.current_alpha() == pytest.approx(alpha_t, abs=1e-15)
    check_against_reference(
        loss_fn, dict(kind='distill', gamma=gamma, label_smoothing=label_smoothing,
                      alpha=alpha_t), with_queue, pass_momentum=True)
    assert float(loss_fn.log_vars['distill_alpha']) == pytest.approx(alpha_t, abs=1e-15)


def test_distillation_at_alpha_zero_is_wscl(iteration):
    iteration(0)
    image_feats, text_feats, labels, scale, queue, momentum = make_inputs(True)
    loss = MomentumDistillationLoss(ramp_iters=100, gamma=1.0)(
        image_feats, text_feats, labels, scale, *queue, momentum_image_feats=momentum[0],
        momentum_text_feats=momentum[1])
    torch.testing.assert_close(
        loss, WeightedSimilarityCouplingLoss(gamma=1.0)(image_feats, text_feats, labels,
                                                        scale, *queue), rtol=1e-12, atol=0)


def test_distillation_needs_momentum_feats():
    image_feats, text_feats, labels, scale, _, _ = make_inputs(False)
    loss_fn = MomentumDistillationLoss(ramp_iters=0)
    assert loss_fn.needs_momentum_feats and not WeightedSimilarityCouplingLoss.needs_momentum_feats
    with pytest.raises(ValueError, match='momentum_image_feats'):
        loss_fn(image_feats, text_feats, labels, scale)


def test_soft_jaccard_keeps_the_scale_of_labels():
    labels = torch.tensor([[1.0, 0.0, 0.0], [0.5, 0.0, 0.0], [1.0, 1.0, 0.0],
                           [0.0, 0.0, 0.0]])
    cosine = label_similarity(labels, labels, 'cosine')
    jaccard = label_similarity(labels, labels, 'soft_jaccard')
    assert cosine.dtype == jaccard.dtype == torch.float64
    assert float(cosine[0, 1]) == pytest.approx(1.0)  # uncertainty lost
    assert float(jaccard[0, 1]) == 0.5  # 0.5 / 1.0
    assert float(jaccard[0, 2]) == 0.5  # 1 / 2
    assert float(jaccard[1, 2]) == 0.25  # 0.5 / 2
    assert torch.equal(jaccard.diagonal()[:3], torch.ones(3, dtype=torch.float64))
    assert torch.equal(jaccard[3], torch.zeros(4, dtype=torch.float64))  # unlabelled
    assert torch.equal(jaccard[:, 3], torch.zeros(4, dtype=torch.float64))
    # An uncertain and a certain finding of the same class: eliminated with the cosine,
    # weight 0.5 with the soft Jaccard.
    image_feats, text_feats, _, scale, _, _ = make_inputs(False)
    pair = (image_feats[:2], text_feats[:2], labels[:2].double(), scale)
    wscl_cosine = WeightedSimilarityCouplingLoss(similarity='cosine')
    wscl_jaccard = WeightedSimilarityCouplingLoss(similarity='soft_jaccard')
    wscl_cosine(*pair)
    wscl_jaccard(*pair)
    assert float(wscl_cosine.log_vars['eliminated']) == 1.0
    assert float(wscl_jaccard.log_vars['eliminated']) == 0.0
    assert float(wscl_jaccard.log_vars['mean_weight']) == pytest.approx(0.5)
    with pytest.raises(ValueError, match='kind must be one of'):
        label_similarity(labels, labels, 'dice')


@pytest.mark.parametrize('loss_fn', [
    WeightedSimilarityCouplingLoss(gamma=1.0, label_smoothing=0.2),
    WeightedSimilarityCouplingLoss(hard=True, similarity='soft_jaccard', label_smoothing=0.2)
])
def test_label_smoothing_with_every_negative_eliminated(loss_fn):
    """All targets on the positive, never -inf times a weight: loss and gradients 0."""
    image_feats, text_feats, _, scale, _, _ = make_inputs(False)
    labels = torch.tensor([[0.0, 1.0, 0.5]] * 6, dtype=torch.float64)
    loss = loss_fn(image_feats, text_feats, labels, scale)
    grads = torch.autograd.grad(loss, (image_feats, text_feats, scale))
    assert float(loss.detach()) == 0.0
    for grad in grads:
        assert torch.equal(grad, torch.zeros_like(grad))
    assert float(loss_fn.log_vars['mean_weight']) == 0.0


def test_soft_targets_without_labels_are_clip():
    image_feats, text_feats, _, scale, queue, _ = make_inputs(True)
    labels = torch.zeros(len(LABELS), 4, dtype=torch.float64)
    queue = (*queue[:2], torch.zeros(len(QUEUE_LABELS), 4, dtype=torch.float64))
    torch.testing.assert_close(
        LabelSoftTargetLoss()(image_feats, text_feats, labels, scale, *queue),
        WeightedSimilarityCouplingLoss(gamma=0.0)(image_feats, text_feats, labels, scale,
                                                  *queue), rtol=1e-12, atol=0)


def test_log_vars_under_bf16_autocast_are_float32():
    image_feats, text_feats, labels, scale, queue, momentum = make_inputs(True)
    loss_fn = MomentumDistillationLoss(ramp_iters=0, gamma=1.0)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        loss = loss_fn(*(t.float().bfloat16() for t in (image_feats, text_feats)),
                       labels.float(), scale.float(), *(t.float() for t in queue),
                       momentum_image_feats=momentum[0].bfloat16(),
                       momentum_text_feats=momentum[1].bfloat16())
    assert loss.dtype == torch.float32
    assert all(value.dtype == torch.float32 for value in loss_fn.log_vars.values())
    assert set(loss_fn.log_vars) == {'i2t', 't2i', 'eliminated', 'eliminated_queue',
                                     'mean_weight', 'distill_alpha'}


@pytest.mark.parametrize('cfg,cls', [
    (dict(type='WeightedSimilarityCouplingLoss', gamma=0.0), WeightedSimilarityCouplingLoss),
    (dict(type='WeightedSimilarityCouplingLoss', similarity='soft_jaccard',
          label_smoothing=0.1), WeightedSimilarityCouplingLoss),
    (dict(type='LabelSoftTargetLoss', one_hot_weight=0.5), LabelSoftTargetLoss),
    (dict(type='MomentumDistillationLoss', ramp_iters=62, alpha=0.4, gamma=1.0),
     MomentumDistillationLoss),
])
def test_registered_in_mmpretrain_models(cfg, cls):
    loss_fn = MODELS.build(cfg)
    assert type(loss_fn) is cls
    for key, value in cfg.items():
        if key != 'type':
            assert getattr(loss_fn, key) == value, key


def test_invalid_arguments():
    with pytest.raises(ValueError, match='similarity must be one of'):
        WeightedSimilarityCouplingLoss(similarity='dice')
    with pytest.raises(ValueError, match='label_smoothing must be in'):
        WeightedSimilarityCouplingLoss(label_smoothing=1.0)
    with pytest.raises(ValueError, match='one_hot_weight must be in'):
        LabelSoftTargetLoss(one_hot_weight=1.5)
    with pytest.raises(ValueError, match='alpha must be in'):
        MomentumDistillationLoss(ramp_iters=10, alpha=-0.1)
    with pytest.raises(ValueError, match='ramp_iters must be >= 0'):
        MomentumDistillationLoss(ramp_iters=-1)
