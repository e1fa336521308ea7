"""ALBEF-style momentum distillation on top of WSCL."""
from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from mmengine.dist import all_gather
from mmengine.logging import MessageHub
from mmpretrain.registry import MODELS

from .wscl import ContrastPairs, WeightedSimilarityCouplingLoss, weighted_logits


@MODELS.register_module()
class MomentumDistillationLoss(WeightedSimilarityCouplingLoss):
    """WSCL whose targets mix the momentum towers' predictions with the ground truth.

    As ALBEF's momentum distillation: the target of anchor i's row is

        q_i = alpha_t * softmax_j(s m_i . m'_j + log w_ij) + (1 - alpha_t) * g_i

    where ``m_i`` is the momentum feature of the anchor, ``m'_j`` those of the
    candidates (the global batch's momentum features, then the queue), ``s``
    the scale (no gradient), ``w`` the same pair weights as the loss's (so the
    teacher gives eliminated pairs no mass) and ``g_i`` the target of
    :class:`WeightedSimilarityCouplingLoss` (the positive, with optional label
    smoothing). With ``gamma=0``, ALBEF's distillation on CLIP's InfoNCE (the
    student's batch candidates are the online features, not ALBEF's momentum
    ones).

    ``alpha_t = alpha * min(1, t / ramp_iters)`` rises linearly over the first
    ``ramp_iters`` iterations (ALBEF: the first epoch). The iteration ``t``
    is the ``iter`` that MMEngine's ``RuntimeInfoHook`` sets in the current
    ``MessageHub`` before every training iteration (resumed runs included);
    without it (outside a runner), ``alpha_t = alpha``.

    :class:`~vilref_mm.models.ViLReF` passes the momentum features (it needs
    ``queue_size > 0``, i.e. momentum towers). Distributed, they are gathered
    like the online features (without gradient).

    Args:
        ramp_iters (int): Iterations over which ``alpha_t`` rises from 0 to
            ``alpha``; 0 for a constant ``alpha``.
        alpha (float): Weight in [0, 1] of the momentum targets. Defaults to
            0.4 (ALBEF's).
        **kwargs: Options of :class:`WeightedSimilarityCouplingLoss`
            (``gamma``, ``hard``, ``similarity``, ``label_smoothing``,
            ``loss_weight``).

    Attributes:
        log_vars (dict[str, torch.Tensor]): As the parent's, plus
            ``distill_alpha`` (``alpha_t``).
    """

    needs_momentum_feats = True

    def __init__(self, ramp_iters: int, alpha: float = 0.4, **kwargs) -> None:
        super().__init__(**kwargs)
        if not 0 <= alpha <= 1:
            raise ValueError(f'MomentumDistillationLoss: alpha must be in [0, 1], got {alpha}')
        if ramp_iters < 0:
            raise ValueError(f'MomentumDistillationLoss: ramp_iters must be >= 0, got '
                             f'{ramp_iters}')
        self.alpha = float(alpha)
        self.ramp_iters = ramp_iters

    def current_alpha(self) -> float:
        """``alpha_t`` at the current training iteration (see the class docstring)."""
        iteration = MessageHub.get_current_instance().get_info('iter')
        if iteration is None or self.ramp_iters == 0:
            return self.alpha
        return self.alpha * min(1.0, iteration / self.ramp_iters)

    def forward(self,
                image_feats: torch.Tensor,
                text_feats: torch.Tensor,
                labels: torch.Tensor,
                scale: torch.Tensor,
                queue_image_feats: Optional[torch.Tensor] = None,
                queue_text_feats: Optional[torch.Tensor] = None,
                queue_labels: Optional[torch.Tensor] = None,
                momentum_image_feats: Optional[torch.Tensor] = None,
                momentum_text_feats: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Compute the loss of this rank's anchors.

        Args:
            image_feats, text_feats, labels, scale, queue_image_feats,
            queue_text_feats, queue_labels: As
                :meth:`WeightedSimilarityCouplingLoss.forward`.
            momentum_image_feats (torch.Tensor): (B, D) L2-normalised momentum
                image features of the local batch.
            momentum_text_feats (torch.Tensor): (B, D) L2-normalised momentum
                text features of the local batch.

        Returns:
            torch.Tensor: The scalar loss.
        """
        if momentum_image_feats is None or momentum_text_feats is None:
            raise ValueError(
                'MomentumDistillationLoss needs momentum_image_feats and momentum_text_feats '
                '(ViLReF passes them when model.queue_size > 0)')
        with torch.autocast(image_feats.device.type, enabled=False):
            pairs = self.contrast(image_feats, text_feats, labels, scale,
                                  queue_image_feats, queue_text_feats, queue_labels)
            ground_truth = self.target_distributions(pairs)
            if ground_truth is None:
                one_hot = F.one_hot(pairs.positives, pairs.eliminated.size(1)).to(
                    pairs.logits[0].dtype)
                ground_truth = (one_hot, one_hot)
            alpha = self.current_alpha()
            teacher = self.teacher_distributions(pairs, scale, momentum_image_feats,
                                                 momentum_text_feats, queue_image_feats,
                                                 queue_text_feats)
            targets = tuple(alpha * predicted + (1 - alpha) * truth
                            for predicted, truth in zip(teacher, ground_truth))
            loss = self.reduce(pairs, targets)
        self.log_vars['distill_alpha'] = loss.detach().new_full((), alpha)
        return loss

    @torch.no_grad()
    def teacher_distributions(
            self, pairs: ContrastPairs, scale: torch.Tensor,
            momentum_image_feats: torch.Tensor, momentum_text_feats: torch.Tensor,
            queue_image_feats: Optional[torch.Tensor],
            queue_text_feats: Optional[torch.Tensor]) -> Tuple[torch.Tensor, torch.Tensor]:
        """The momentum towers' softmax over the same candidates and pair weights, for the
        image-to-text and text-to-image rows."""
        dtype = pairs.logits[0].dtype
        image_feats = momentum_image_feats.to(dtype)
        text_feats = momentum_text_feats.to(dtype)
        global_image_feats = torch.cat(all_gather(image_feats))
        global_text_feats = torch.cat(all_gather(text_feats))
        scale = scale.detach().to(dtype)
        return tuple(
            F.softmax(weighted_logits(scale, anchors, batch, queue, pairs.log_weights,
                                      pairs.eliminated), dim=1)
            for anchors, batch, queue in ((image_feats, global_text_feats, queue_text_feats),
                                          (text_feats, global_image_feats, queue_image_feats)))
