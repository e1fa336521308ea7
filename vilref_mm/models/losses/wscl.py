"""Weighted Similarity Coupling Loss (WSCL) of ViLReF, and what its variants share."""
from typing import Dict, NamedTuple, Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.dist import all_gather, get_rank
from mmpretrain.registry import MODELS

from vilref_mm.utils import all_gather_with_grad

#: Label similarity from which a pair counts as a false negative.
ELIMINATION_THRESHOLD = 1 - 1e-6
#: The label similarities :func:`label_similarity` computes.
SIMILARITIES = ('cosine', 'soft_jaccard')

#: Target distributions of the image-to-text and text-to-image rows; None: the positive alone.
Targets = Optional[Tuple[torch.Tensor, torch.Tensor]]


def label_similarity(labels: torch.Tensor,
                     candidate_labels: torch.Tensor,
                     kind: str = 'cosine') -> torch.Tensor:
    """Similarity of label vectors in [0, 1], 0 where either vector is all zeros.

    ``'cosine'``: ``y_i . y_j / (|y_i| |y_j|)``; parallel vectors (``y`` and
    ``0.5 y``) are identical. ``'soft_jaccard'``: ``sum_c min(y_ic, y_jc) /
    sum_c max(y_ic, y_jc)``; it keeps the scale, so an uncertain finding (0.5)
    and a certain one (1.0) of the same label give 0.5.

    Args:
        labels (torch.Tensor): (B, C) label vectors of the anchors.
        candidate_labels (torch.Tensor): (M, C) label vectors of the
            candidates.
        kind (str): One of :data:`SIMILARITIES`. Defaults to 'cosine'.

    Returns:
        torch.Tensor: (B, M) similarities in float64, so that identical label
        vectors reach 1 well within :data:`ELIMINATION_THRESHOLD`.
    """
    labels, candidate_labels = labels.double(), candidate_labels.double()
    if kind == 'cosine':
        # F.normalize maps an all-zero vector to zeros, hence similarity 0.
        return F.normalize(labels, dim=1) @ F.normalize(candidate_labels, dim=1).t()
    if kind == 'soft_jaccard':
        # min(a, b) = (a + b - |a - b|) / 2 and max(a, b) = (a + b + |a - b|) / 2: the sums
        # over classes need the L1 distances, not a (B, M, C) tensor.
        totals = labels.sum(1, keepdim=True) + candidate_labels.sum(1)
        distances = torch.cdist(labels, candidate_labels, p=1)
        return (totals - distances) / (totals + distances).clamp_min(
            torch.finfo(torch.float64).tiny)
    raise ValueError(f"label_similarity: kind must be one of {SIMILARITIES}, got '{kind}'")


def _append_queue(batch: torch.Tensor,
                  queue: Optional[torch.Tensor]) -> torch.Tensor:
    """Candidates: the global batch followed by the queue entries, if any."""
    if queue is None:
        return batch
    return torch.cat([batch, queue.to(batch.dtype)])


def _candidate_similarities(anchors: torch.Tensor, batch: torch.Tensor,
                            queue: Optional[torch.Tensor]) -> torch.Tensor:
    """``anchors @ _append_queue(batch, queue).t()``, as two products whose (B, N) and
    (B, K) results are joined: the (K, D) queue is read in place, never copied next to the
    batch (nor kept as such a copy for the backward pass)."""
    similarities = anchors @ batch.t()
    if queue is None:
        return similarities
    return torch.cat([similarities, anchors @ queue.to(anchors.dtype).t()], dim=1)


def weighted_logits(scale: torch.Tensor, anchors: torch.Tensor, batch: torch.Tensor,
                    queue: Optional[torch.Tensor], log_weights: torch.Tensor,
                    eliminated: torch.Tensor) -> torch.Tensor:
    """``s a_i . c_j + log w_ij`` over the candidates (batch, then queue), ``-inf`` where
    eliminated (``masked_fill`` also gives those entries an exact zero gradient)."""
    logits = scale * _candidate_similarities(anchors, batch, queue) + log_weights
    return logits.masked_fill(eliminated, float('-inf'))


class ContrastPairs(NamedTuple):
    """This rank's anchors against their candidates, what every loss of the family shares.

    Attributes:
        logits: Weighted logits (B, M) of the image-to-text and text-to-image rows.
        positives: (B,) column of each anchor's positive (its global batch index).
        similarity: (B, M) label similarities, the positive's own included (float64).
        eliminated: (B, M) pairs eliminated as false negatives (never the positive).
        log_weights: (B, M) ``log w`` (0 for the positive; meaningless where eliminated).
        global_size: N, the candidates of the global batch (the first N columns).
        with_queue: Whether queue tensors were passed (the last M - N columns).
    """

    logits: Tuple[torch.Tensor, torch.Tensor]
    positives: torch.Tensor
    similarity: torch.Tensor
    eliminated: torch.Tensor
    log_weights: torch.Tensor
    global_size: int
    with_queue: bool


@MODELS.register_module()
class WeightedSimilarityCouplingLoss(nn.Module):
    """Weighted Similarity Coupling Loss (WSCL) of ViLReF.

    Symmetric InfoNCE in which negative pair (i, j) enters the denominator
    with weight ``w_ij = (1 - a_ij) ** gamma``, ``a_ij`` being the similarity
    of the two samples' label vectors (0 when either is all zeros). Pairs with
    ``a_ij >= 1 - 1e-6`` are false negatives and are eliminated (``w_ij = 0``)
    when ``gamma > 0`` or ``hard=True``. The positive pair keeps weight 1.
    Implemented as cross-entropy over the logits ``s * v_i . t_j + log w_ij``
    (``-inf`` where ``w_ij = 0``), computed in at least float32 even under
    autocast. ``gamma=0`` is plain CLIP InfoNCE, ``hard=True`` hard
    false-negative elimination.

    With ``label_smoothing = e``, the target of a row is ``1 - e`` on the
    positive plus ``e`` spread evenly over the row's candidates that are not
    eliminated (the positive included); eliminated entries get no target.

    Distributed (world size > 1), the features are gathered with gradient and
    the labels without; each rank computes the rows of its local anchors
    against all global candidates, so that the mean of the ranks' losses and
    the DDP-averaged gradients equal those of one process on the global
    batch. Every rank must hold the same local batch size.

    Subclasses change the targets (:meth:`target_distributions`); a subclass
    that sets ``needs_momentum_feats`` receives the momentum towers' features
    of the batch from :class:`~vilref_mm.models.ViLReF` as the keyword
    arguments ``momentum_image_feats`` and ``momentum_text_feats``.

    Args:
        gamma (float): Exponent of the pair weight, >= 0. 0 gives plain CLIP
            InfoNCE (no weighting, no elimination). Defaults to 1.0.
        hard (bool): Only eliminate false negatives (``w`` is 0 or 1),
            whatever ``gamma``. Defaults to False.
        similarity (str): Label similarity ``a``: 'cosine' or
            'soft_jaccard' (see :func:`label_similarity`). Defaults to
            'cosine'.
        label_smoothing (float): Target mass ``e`` in [0, 1) spread over the
            non-eliminated candidates. Defaults to 0.
        loss_weight (float): Factor on the loss. Defaults to 1.0.

    Attributes:
        log_vars (dict[str, torch.Tensor]): Values of the last call for
            logging, detached scalar tensors on the features' device (no
            host-device sync): ``i2t`` and ``t2i`` (the two directions' losses,
            times ``loss_weight``; ``loss`` is their mean), ``eliminated``
            (share of the in-batch off-diagonal pairs eliminated),
            ``mean_weight`` (mean ``w`` over all negative pairs, eliminated
            ones counted as 0) and, when queue tensors are passed,
            ``eliminated_queue`` (share of the anchor-queue pairs eliminated).
            No key contains 'loss', so MMEngine's ``parse_losses`` does not
            add them to the loss.
    """

    #: Whether the loss needs the momentum features of the batch.
    needs_momentum_feats = False

    def __init__(self,
                 gamma: float = 1.0,
                 hard: bool = False,
                 similarity: str = 'cosine',
                 label_smoothing: float = 0.0,
                 loss_weight: float = 1.0) -> None:
        super().__init__()
        name = type(self).__name__
        if gamma < 0:
            raise ValueError(f'{name}: gamma must be >= 0, got {gamma}; use gamma=0 for '
                             'plain CLIP InfoNCE.')
        if similarity not in SIMILARITIES:
            raise ValueError(f"{name}: similarity must be one of {SIMILARITIES}, got "
                             f"'{similarity}'")
        if not 0 <= label_smoothing < 1:
            raise ValueError(f'{name}: label_smoothing must be in [0, 1), got '
                             f'{label_smoothing}')
        self.gamma = float(gamma)
        self.hard = hard
        self.similarity = similarity
        self.label_smoothing = float(label_smoothing)
        self.loss_weight = loss_weight
        self.log_vars: Dict[str, torch.Tensor] = {}

    def pair_log_weights(
            self,
            similarity: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """Pair weights in log space from label similarities.

        Args:
            similarity (torch.Tensor): Label similarities ``a``.

        Returns:
            tuple[torch.Tensor, torch.Tensor]: The boolean mask of eliminated
            pairs (``w = 0``) and ``log w`` elsewhere (finite everywhere;
            its values under the mask are meaningless).
        """
        if self.hard or self.gamma > 0:
            eliminated = similarity >= ELIMINATION_THRESHOLD
        else:
            eliminated = torch.zeros_like(similarity, dtype=torch.bool)
        if self.hard or self.gamma == 0:
            return eliminated, torch.zeros_like(similarity)
        one_minus_similarity = (1 - similarity).clamp_min(
            1 - ELIMINATION_THRESHOLD)
        return eliminated, self.gamma * one_minus_similarity.log()

    def forward(self,
                image_feats: torch.Tensor,
                text_feats: torch.Tensor,
                labels: torch.Tensor,
                scale: torch.Tensor,
                queue_image_feats: Optional[torch.Tensor] = None,
                queue_text_feats: Optional[torch.Tensor] = None,
                queue_labels: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Compute the loss of this rank's anchors.

        Args:
            image_feats (torch.Tensor): (B, D) L2-normalised local image
                embeddings.
            text_feats (torch.Tensor): (B, D) L2-normalised local text
                embeddings.
            labels (torch.Tensor): (B, C) label vectors in [0, 1].
            scale (torch.Tensor): Scalar ``exp(logit_scale)``.
            queue_image_feats (torch.Tensor, optional): (K, D) filled entries
                of the image queue (identical on all ranks). K may be 0.
            queue_text_feats (torch.Tensor, optional): (K, D) filled entries
                of the text queue.
            queue_labels (torch.Tensor, optional): (K, C) labels of the queue
                entries.

        Returns:
            torch.Tensor: Scalar ``(mean L_i2t + mean L_t2i) / 2`` over the
            local anchors, times ``loss_weight``.
        """
        with torch.autocast(image_feats.device.type, enabled=False):
            pairs = self.contrast(image_feats, text_feats, labels, scale,
                                  queue_image_feats, queue_text_feats, queue_labels)
            return self.reduce(pairs, self.target_distributions(pairs))

    def contrast(self,
                 image_feats: torch.Tensor,
                 text_feats: torch.Tensor,
                 labels: torch.Tensor,
                 scale: torch.Tensor,
                 queue_image_feats: Optional[torch.Tensor] = None,
                 queue_text_feats: Optional[torch.Tensor] = None,
                 queue_labels: Optional[torch.Tensor] = None) -> ContrastPairs:
        """Gather the global batch and build the weighted logits of this rank's anchors
        (arguments as :meth:`forward`; call it with autocast disabled)."""
        queues = (queue_image_feats, queue_text_feats, queue_labels)
        if any(queue is None for queue in queues) and any(
                queue is not None for queue in queues):
            raise ValueError(
                f'{type(self).__name__}: pass queue_image_feats, queue_text_feats and '
                'queue_labels together, or none of them.')
        dtype = torch.promote_types(image_feats.dtype, torch.float32)
        image_feats = image_feats.to(dtype)
        text_feats = text_feats.to(dtype)
        scale = scale.to(dtype)
        local_size = image_feats.size(0)
        global_image_feats = all_gather_with_grad(image_feats)
        global_text_feats = all_gather_with_grad(text_feats)
        global_labels = torch.cat(all_gather(labels))

        anchors = torch.arange(local_size, device=image_feats.device)
        positives = anchors + get_rank() * local_size
        similarity = label_similarity(
            labels, _append_queue(global_labels, queue_labels), self.similarity)
        eliminated, log_weights = self.pair_log_weights(similarity)
        eliminated[anchors, positives] = False  # the positive keeps weight 1
        log_weights[anchors, positives] = 0
        log_weights = log_weights.to(dtype)
        logits = (
            weighted_logits(scale, image_feats, global_text_feats, queue_text_feats,
                            log_weights, eliminated),
            weighted_logits(scale, text_feats, global_image_feats, queue_image_feats,
                            log_weights, eliminated))
        return ContrastPairs(logits, positives, similarity, eliminated, log_weights,
                             global_labels.size(0), queue_labels is not None)

    def target_distributions(self, pairs: ContrastPairs) -> Targets:
        """The target distributions over the candidates: None (the positive alone) without
        label smoothing, else ``1 - e`` on the positive plus ``e`` spread over the
        non-eliminated candidates, the same for both directions."""
        if self.label_smoothing == 0:
            return None
        kept = (~pairs.eliminated).to(pairs.logits[0].dtype)
        targets = kept * (self.label_smoothing / kept.sum(1, keepdim=True))
        targets[torch.arange(len(targets), device=targets.device),
                pairs.positives] += 1 - self.label_smoothing
        return targets, targets

    def reduce(self, pairs: ContrastPairs, targets: Targets) -> torch.Tensor:
        """The loss: cross-entropy of both directions' rows with ``targets``, averaged over
        the local anchors and the two directions; sets :attr:`log_vars`."""
        directions = []
        for index, logits in enumerate(pairs.logits):
            if targets is None:
                directions.append(F.cross_entropy(logits, pairs.positives))
            else:
                # Eliminated entries have log p = -inf and target 0: zeroed, no 0 * inf.
                log_probs = F.log_softmax(logits, dim=1).masked_fill(pairs.eliminated, 0)
                directions.append(-(targets[index] * log_probs).sum(1).mean())
        loss_i2t, loss_t2i = (self.loss_weight * loss for loss in directions)

        local_size, num_candidates = pairs.eliminated.shape
        global_size = pairs.global_size
        weights = pairs.log_weights.exp().masked_fill(pairs.eliminated, 0)
        self.log_vars = dict(
            i2t=loss_i2t.detach(),
            t2i=loss_t2i.detach(),
            eliminated=pairs.eliminated[:, :global_size].sum() /
            max(local_size * (global_size - 1), 1),
            mean_weight=(weights.sum() - local_size) /
            max(local_size * (num_candidates - 1), 1))
        if pairs.with_queue:
            self.log_vars['eliminated_queue'] = pairs.eliminated[:, global_size:].sum() / \
                max(local_size * (num_candidates - global_size), 1)
        return (loss_i2t + loss_t2i) / 2
