"""Label-aware soft targets (the FLAIR / MedCLIP family)."""
import torch
from mmpretrain.registry import MODELS

from .wscl import ContrastPairs, Targets, WeightedSimilarityCouplingLoss


@MODELS.register_module()
class LabelSoftTargetLoss(WeightedSimilarityCouplingLoss):
    """Symmetric contrastive loss whose targets come from label similarity.

    The logits are CLIP's (``s * v_i . t_j`` over the global batch and the
    queue; nothing is weighted or eliminated). The target of anchor i's row is

        q_ij = lambda * [j = i] + (1 - lambda) * a_ij / sum_k a_ik

    with ``a_ij`` the label similarity and ``a_ii = 1`` (also for unlabelled
    anchors, whose target is then the positive alone): candidates with the
    anchor's findings are pulled towards it, in proportion to how much they
    share. The loss of a row is the cross-entropy ``-sum_j q_ij log p_ij``;
    the same targets serve both directions. Distributed as
    :class:`WeightedSimilarityCouplingLoss`.

    Args:
        similarity (str): Label similarity, 'cosine' or 'soft_jaccard'.
            Defaults to 'cosine'.
        one_hot_weight (float): ``lambda`` in [0, 1], the share of the
            one-hot target in the mixture. Defaults to 0.
        loss_weight (float): Factor on the loss. Defaults to 1.0.
    """

    def __init__(self,
                 similarity: str = 'cosine',
                 one_hot_weight: float = 0.0,
                 loss_weight: float = 1.0) -> None:
        super().__init__(gamma=0.0, similarity=similarity, loss_weight=loss_weight)
        if not 0 <= one_hot_weight <= 1:
            raise ValueError(f'LabelSoftTargetLoss: one_hot_weight must be in [0, 1], got '
                             f'{one_hot_weight}')
        self.one_hot_weight = float(one_hot_weight)

    def target_distributions(self, pairs: ContrastPairs) -> Targets:
        """Row-normalised label similarities mixed with the one-hot target."""
        anchors = torch.arange(len(pairs.positives), device=pairs.positives.device)
        similarity = pairs.similarity.clone()
        similarity[anchors, pairs.positives] = 1
        targets = (1 - self.one_hot_weight) * similarity / similarity.sum(1, keepdim=True)
        targets[anchors, pairs.positives] += self.one_hot_weight
        targets = targets.to(pairs.logits[0].dtype)
        return targets, targets
