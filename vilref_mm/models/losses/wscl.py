"""Weighted Similarity Coupling Loss (WSCL) of ViLReF."""
from typing import Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.dist import all_gather, get_rank
from mmpretrain.registry import MODELS

from vilref_mm.utils import all_gather_with_grad

#: Label cosine similarity from which a pair counts as a false negative.
ELIMINATION_THRESHOLD = 1 - 1e-6


def label_similarity(labels: torch.Tensor,
                     candidate_labels: torch.Tensor) -> torch.Tensor:
    """Cosine similarity of label vectors, 0 where either vector is all zeros.

    Args:
        labels (torch.Tensor): (B, C) label vectors of the anchors.
        candidate_labels (torch.Tensor): (M, C) label vectors of the
            candidates.

    Returns:
        torch.Tensor: (B, M) similarities in float64, so that identical label
        vectors reach 1 well within :data:`ELIMINATION_THRESHOLD`.
    """
    # F.normalize maps an all-zero vector to zeros, hence similarity 0.
    return F.normalize(labels.double(), dim=1) @ F.normalize(
        candidate_labels.double(), dim=1).t()


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


@MODELS.register_module()
class WeightedSimilarityCouplingLoss(nn.Module):
    """Weighted Similarity Coupling Loss (WSCL) of ViLReF.

    Symmetric InfoNCE in which negative pair (i, j) enters the denominator
    with weight ``w_ij = (1 - a_ij) ** gamma``, ``a_ij`` being the cosine
    similarity of the two samples' label vectors (0 when either is all
    zeros). Pairs with ``a_ij >= 1 - 1e-6`` are false negatives and are
    eliminated (``w_ij = 0``) when ``gamma > 0`` or ``hard=True``. The
    positive pair keeps weight 1. Implemented as cross-entropy over the
    logits ``s * v_i . t_j + log w_ij`` (``-inf`` where ``w_ij = 0``),
    computed in at least float32 even under autocast.

    Distributed (world size > 1), the features are gathered with gradient and
    the labels without; each rank computes the rows of its local anchors
    against all global candidates, so that the mean of the ranks' losses and
    the DDP-averaged gradients equal those of one process on the global
    batch. Every rank must hold the same local batch size.

    Args:
        gamma (float): Exponent of the pair weight, >= 0. 0 gives plain CLIP
            InfoNCE (no weighting, no elimination). Defaults to 1.0.
        hard (bool): Only eliminate false negatives (``w`` is 0 or 1),
            whatever ``gamma``. Defaults to False.
        loss_weight (float): Factor on the loss. Defaults to 1.0.

    Attributes:
        last_eliminated_share (torch.Tensor): Share of the in-batch
            off-diagonal pairs (local anchors against the global batch)
            eliminated in the last call; a detached scalar tensor on the
            features' device, for logging without a host-device sync.
    """

    def __init__(self,
                 gamma: float = 1.0,
                 hard: bool = False,
                 loss_weight: float = 1.0) -> None:
        super().__init__()
        if gamma < 0:
            raise ValueError(
                f'WeightedSimilarityCouplingLoss: gamma must be >= 0, got '
                f'{gamma}; use gamma=0 for plain CLIP InfoNCE.')
        self.gamma = float(gamma)
        self.hard = hard
        self.loss_weight = loss_weight
        self.last_eliminated_share = torch.tensor(0.)

    def pair_log_weights(
            self,
            similarity: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """Pair weights in log space from label similarities.

        Args:
            similarity (torch.Tensor): Label cosine similarities ``a``.

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
        queues = (queue_image_feats, queue_text_feats, queue_labels)
        if any(queue is None for queue in queues) and any(
                queue is not None for queue in queues):
            raise ValueError(
                'WeightedSimilarityCouplingLoss: pass queue_image_feats, '
                'queue_text_feats and queue_labels together, or none of them.')
        dtype = torch.promote_types(image_feats.dtype, torch.float32)
        with torch.autocast(image_feats.device.type, enabled=False):
            image_feats = image_feats.to(dtype)
            text_feats = text_feats.to(dtype)
            scale = scale.to(dtype)
            local_size = image_feats.size(0)
            global_image_feats = all_gather_with_grad(image_feats)
            global_text_feats = all_gather_with_grad(text_feats)
            global_labels = torch.cat(all_gather(labels))
            global_size = global_labels.size(0)

            anchors = torch.arange(local_size, device=image_feats.device)
            targets = anchors + get_rank() * local_size
            similarity = label_similarity(
                labels, _append_queue(global_labels, queue_labels))
            similarity[anchors, targets] = 0  # the positive keeps weight 1
            eliminated, log_weights = self.pair_log_weights(similarity)
            log_weights = log_weights.to(dtype)

            logits_i2t = scale * _candidate_similarities(image_feats, global_text_feats,
                                                         queue_text_feats)
            logits_t2i = scale * _candidate_similarities(text_feats, global_image_feats,
                                                         queue_image_feats)
            # masked_fill also gives eliminated pairs an exact zero gradient.
            logits_i2t = (logits_i2t + log_weights).masked_fill(
                eliminated, float('-inf'))
            logits_t2i = (logits_t2i + log_weights).masked_fill(
                eliminated, float('-inf'))
            loss = (F.cross_entropy(logits_i2t, targets) +
                    F.cross_entropy(logits_t2i, targets)) / 2

        self.last_eliminated_share = (
            eliminated[:, :global_size].sum() /
            max(local_size * (global_size - 1), 1)).detach()
        return self.loss_weight * loss
