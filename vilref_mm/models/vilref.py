"""ViLReF: the CLIP-style dual encoder (image tower, Chinese BERT text tower)."""
import copy
import itertools
import math
import re
from collections import OrderedDict
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.dist import all_gather, all_reduce, is_distributed
from mmengine.model import BaseModel
from mmpretrain.registry import MODELS, TOKENIZER
from torch.distributed.tensor import DTensor

from vilref_mm.evaluation import ZeroShotClassifier
from vilref_mm.utils.checkpoint import CheckpointRuleInitMixin
from vilref_mm.utils.distributed import as_layout_of
from .memory import MemoryQueue

Texts = Union[str, Sequence[str], torch.Tensor]
# State that a released or converted checkpoint lacks: momentum towers and the memory queue.
_MOMENTUM_STATE = re.compile(r'(^|\.)(momentum_|memory_queue\.)')


@MODELS.register_module()
class ViLReF(CheckpointRuleInitMixin, BaseModel):
    """The ViLReF vision-language model (image encoder, BERT text encoder, projections).

    Image feature: the image encoder's last output (ViT: ``ln_post(CLS)``,
    768-d) times ``image_projection`` (``x @ W``); the ModifiedResNet's
    attention pool already projects, so it has no ``image_projection``. Text
    feature: BERT's final ``[CLS]`` state times ``text_projection``. Both are
    L2-normalised for the contrastive loss, and the similarities are scaled
    by ``exp(logit_scale)``.

    The parameter names follow the plugin's modules: ``image_encoder.*`` (the
    backbone's names), ``image_projection``, ``text_encoder.bert.*`` (Hugging
    Face BERT names), ``text_projection`` and ``logit_scale``;
    :func:`vilref_mm.models.convert_release_state_dict` maps released
    ViLReF / Chinese-CLIP / RET-CLIP checkpoints onto them.

    Args:
        image_encoder (dict): Config of the image backbone, e.g.
            ``dict(type='ViLReFViT', out_type='cls_token')`` or
            ``dict(type='ViLReFModifiedResNet')``; its last output is used.
        text_encoder (dict): Config of the text encoder, e.g.
            ``dict(type='ChineseBertEncoder')``.
        embed_dims (int): Dimension D of the joint embedding space.
            Defaults to 512.
        image_projection (bool): Whether the image feature is projected by a
            learnable (C, D) matrix, C being the image encoder's
            ``embed_dims`` (True for the ViT; False for the ModifiedResNet).
            Defaults to True.
        tokenizer (dict): Config of the tokenizer that :meth:`extract_text_feat`
            applies to strings. Defaults to ``ChineseBertTokenizer`` with
            context length 52 (prompts).
        loss (dict): Config of the contrastive loss, called as
            ``loss(image_feats, text_feats, labels, scale)`` plus the filled
            queue with a queue, plus ``momentum_image_feats`` and
            ``momentum_text_feats`` (the batch's momentum features) for a loss
            whose ``needs_momentum_feats`` is True; its ``log_vars`` (if any)
            join the logged values. Defaults to WSCL with ``gamma=1``.
        queue_size (int): Entries K of the memory queue of momentum features
            (batch expansion, ``docs/method.md``); a multiple of the global
            batch. 0 trains without momentum encoders and queue. Defaults to 0.
        momentum_eval (bool): Whether the momentum towers encode in eval mode
            (no dropout, no FLIP patch dropout, BatchNorm with its running
            statistics) while the model trains; no effect without momentum
            towers. Defaults to False (they follow the model's mode).
        num_classes (int): Length C of the label vectors the queue stores.
            Defaults to 25 (the default label set).
        zero_shot (dict, optional): Arguments of
            :class:`~vilref_mm.evaluation.ZeroShotClassifier` (``class_names``,
            ``templates``, ``mode``, ...) used by ``predict``. Defaults to None.
        init_logit_scale (float): Initial ``logit_scale``. Defaults to
            ``log(1 / 0.07)``.
        max_logit_scale (float): Upper bound that :meth:`clamp_logit_scale`
            enforces (the lower bound is 0). Defaults to ``log(100)``.
        data_preprocessor (dict | nn.Module, optional): Defaults to
            :class:`ViLReFDataPreprocessor` with CLIP's mean and std.
        init_cfg (dict, optional): E.g. ``dict(type='Pretrained',
            checkpoint='vilref_vitb16.pth')`` for a converted checkpoint.
            Defaults to None.
    """

    def __init__(self,
                 image_encoder: dict,
                 text_encoder: dict,
                 embed_dims: int = 512,
                 image_projection: bool = True,
                 tokenizer: dict = dict(type='ChineseBertTokenizer', context_length=52),
                 loss: dict = dict(type='WeightedSimilarityCouplingLoss', gamma=1.0),
                 queue_size: int = 0,
                 momentum_eval: bool = False,
                 num_classes: int = 25,
                 zero_shot: Optional[dict] = None,
                 init_logit_scale: float = math.log(1 / 0.07),
                 max_logit_scale: float = math.log(100),
                 data_preprocessor: Optional[Union[dict, nn.Module]] = None,
                 init_cfg: Optional[dict] = None) -> None:
        if data_preprocessor is None:
            data_preprocessor = dict(type='ViLReFDataPreprocessor')
        if isinstance(data_preprocessor, dict):
            data_preprocessor = MODELS.build(data_preprocessor)
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        self.image_encoder = MODELS.build(image_encoder)
        self.text_encoder = MODELS.build(text_encoder)
        self.embed_dims = embed_dims
        if image_projection:
            width = self.image_encoder.embed_dims
            self.image_projection = nn.Parameter(torch.randn(width, embed_dims) * width**-0.5)
        else:
            self.image_projection = None
        width = self.text_encoder.embed_dims
        self.text_projection = nn.Parameter(torch.randn(width, embed_dims) * width**-0.5)
        self.logit_scale = nn.Parameter(torch.tensor(float(init_logit_scale)))
        self.max_logit_scale = max_logit_scale
        self.tokenizer = TOKENIZER.build(tokenizer)
        self.loss_module = MODELS.build(loss)
        if getattr(self.loss_module, 'needs_momentum_feats', False) and queue_size <= 0:
            raise ValueError(f'ViLReF: the loss {type(self.loss_module).__name__} needs the '
                             'momentum towers; set model.queue_size > 0 and add '
                             'MomentumUpdateHook and MemoryQueueHook to custom_hooks')
        self.zero_shot = ZeroShotClassifier(**zero_shot) if zero_shot else None

        # Batch expansion: momentum (EMA) copies of both towers feed a memory queue.
        self.memory_queue = None
        self.momentum_eval = momentum_eval
        #: Whether :meth:`loss` encodes the batch with the momentum towers for the queue
        #: (:class:`MemoryQueueHook` turns it off during the queue's warm-up).
        self.encode_momentum_batch = True
        self._momentum_batch: Optional[Tuple[torch.Tensor, ...]] = None
        if queue_size > 0:
            self.momentum_image_encoder = copy.deepcopy(self.image_encoder).requires_grad_(False)
            self.momentum_text_encoder = copy.deepcopy(self.text_encoder).requires_grad_(False)
            self.register_buffer(
                'momentum_image_projection',
                None if self.image_projection is None else self.image_projection.detach().clone())
            self.register_buffer('momentum_text_projection', self.text_projection.detach().clone())
            self.memory_queue = MemoryQueue(queue_size, embed_dims, num_classes)
            self.register_load_state_dict_post_hook(self._complete_momentum_state)
            # Every rank updates these itself (EMA, enqueue of gathered features): DDP must
            # never broadcast them (the queue alone is 275 MB at K = 65,536).
            self._ddp_params_and_buffers_to_ignore = [
                name for name, _ in itertools.chain(self.named_parameters(),
                                                    self.named_buffers())
                if _MOMENTUM_STATE.search(name)]
            self.train(self.training)

    def train(self, mode: bool = True) -> 'ViLReF':
        """As :meth:`torch.nn.Module.train`; with ``momentum_eval`` the momentum towers stay
        in eval mode."""
        super().train(mode)
        if self.momentum_eval and self.memory_queue is not None:
            self.momentum_image_encoder.eval()
            self.momentum_text_encoder.eval()
        return self

    def _momentum_pairs(self, buffers: bool = False) -> List[Tuple[torch.Tensor, torch.Tensor]]:
        """(online, momentum) pairs of the towers' parameters and the projections, or, with
        ``buffers=True``, of the towers' buffers (e.g. BatchNorm statistics)."""
        towers = ((self.image_encoder, self.momentum_image_encoder),
                  (self.text_encoder, self.momentum_text_encoder))
        if buffers:
            return [pair for online, momentum in towers
                    for pair in zip(online.buffers(), momentum.buffers())]
        pairs = [pair for online, momentum in towers
                 for pair in zip(online.parameters(), momentum.parameters())]
        if self.image_projection is not None:
            pairs.append((self.image_projection, self.momentum_image_projection))
        pairs.append((self.text_projection, self.momentum_text_projection))
        return pairs

    @torch.no_grad()
    def momentum_update(self, momentum: float) -> None:
        """EMA step of the momentum towers, ``theta_m <- m * theta_m + (1 - m) * theta``;
        their buffers follow the online towers' buffers.

        Under FSDP (:class:`~vilref_mm.engine.ViLReFFSDPStrategy`) the towers are sharded
        alike, so each rank lerps its own shards; the momentum projections are buffers
        (replicated), so they lerp towards the whole online projection."""
        pairs = [(as_layout_of(online.detach(), ema), ema)
                 for online, ema in self._momentum_pairs()]
        for sharded in (False, True):  # one fused lerp per kind: DTensors and tensors
            group = [pair for pair in pairs if isinstance(pair[1], DTensor) is sharded]
            if group:
                torch._foreach_lerp_([m for _, m in group], [o for o, _ in group],
                                     1.0 - momentum)
        pairs = self._momentum_pairs(buffers=True)
        if pairs:
            torch._foreach_copy_([m for _, m in pairs], [o for o, _ in pairs])

    def reset_momentum(self) -> None:
        """Copy the online towers into the momentum towers (exactly: lerp with weight 1)."""
        self.momentum_update(0.0)

    def init_weights(self) -> None:
        super().init_weights()
        if self.memory_queue is not None:
            self.reset_momentum()

    def _complete_momentum_state(self, module: nn.Module, incompatible_keys) -> None:
        """After loading a checkpoint without momentum towers or queue (a released or
        converted one), build the towers from the loaded online weights and keep the queue
        empty, instead of reporting their keys as missing."""
        missing = [k for k in incompatible_keys.missing_keys if _MOMENTUM_STATE.search(k)]
        if any('.memory_queue.' not in f'.{k}' for k in missing):
            self.reset_momentum()
        for key in missing:
            incompatible_keys.missing_keys.remove(key)

    @torch.no_grad()
    def clamp_logit_scale(self) -> None:
        """Clamp ``logit_scale`` to [0, ``max_logit_scale``] in place (see :meth:`loss`)."""
        self.logit_scale.clamp_(0, self.max_logit_scale)

    def encode_image(self, images: torch.Tensor) -> torch.Tensor:
        """Projected, not normalised image features.

        Args:
            images (torch.Tensor): (B, 3, H, W) normalised images.

        Returns:
            torch.Tensor: (B, D) features.
        """
        return self._project_image(self.image_encoder, self.image_projection, images)

    @staticmethod
    def _project_image(encoder: nn.Module, projection: Optional[torch.Tensor],
                       images: torch.Tensor) -> torch.Tensor:
        """The last output of an image tower, projected when the tower has a projection."""
        feats = encoder(images)
        if isinstance(feats, (tuple, list)):
            feats = feats[-1]
        return feats if projection is None else feats @ projection

    def encode_text(self, text_ids: torch.Tensor) -> torch.Tensor:
        """Projected, not normalised text features.

        Args:
            text_ids (torch.Tensor): (B, L) token ids (``[CLS]`` first, padded
                with 0).

        Returns:
            torch.Tensor: (B, D) features.
        """
        return self.text_encoder(text_ids) @ self.text_projection

    def extract_image_feat(self, images: torch.Tensor) -> torch.Tensor:
        """L2-normalised image embeddings.

        Args:
            images (torch.Tensor): (B, 3, H, W) float images, already
                normalised (see :class:`ViLReFDataPreprocessor`).

        Returns:
            torch.Tensor: (B, D) unit-norm embeddings.
        """
        return F.normalize(self.encode_image(images), dim=-1)

    def extract_text_feat(self, texts: Texts) -> torch.Tensor:
        """L2-normalised text embeddings.

        Args:
            texts (str | Sequence[str] | torch.Tensor): Texts, tokenised with
                :attr:`tokenizer`, or (B, L) token ids.

        Returns:
            torch.Tensor: (B, D) unit-norm embeddings.
        """
        if isinstance(texts, str):
            texts = [texts]
        if not isinstance(texts, torch.Tensor):
            texts = self.tokenizer(list(texts))
        return F.normalize(self.encode_text(texts.to(self.logit_scale.device)), dim=-1)

    def forward(self,
                inputs: Union[torch.Tensor, Dict[str, torch.Tensor]],
                data_samples: Optional[List] = None,
                mode: str = 'tensor'):
        """The mmengine entry point.

        Args:
            inputs (torch.Tensor | dict): The batch from
                :class:`ViLReFDataPreprocessor`: a dict with ``images``
                (B, 3, H, W), ``text_ids`` (B, L) and, for the loss,
                optionally ``labels`` (B, C); a tensor means ``images``.
            data_samples (list, optional): Data samples of the batch.
            mode (str): 'tensor' (L2-normalised features), 'loss' or
                'predict'.

        Returns:
            dict: 'tensor': ``image_feats`` and/or ``text_feats`` (B, D), for
            the inputs present; 'loss': see :meth:`loss`.
        """
        if isinstance(inputs, torch.Tensor):
            inputs = {'images': inputs}
        if mode == 'tensor':
            feats = {}
            if 'images' in inputs:
                feats['image_feats'] = self.extract_image_feat(inputs['images'])
            if 'text_ids' in inputs:
                feats['text_feats'] = self.extract_text_feat(inputs['text_ids'])
            return feats
        if mode == 'loss':
            return self.loss(inputs, data_samples)
        if mode == 'predict':
            return self.predict(inputs, data_samples)
        raise ValueError(f"ViLReF: invalid mode '{mode}'; use 'tensor', 'loss' or 'predict'")

    def loss(self,
             inputs: Dict[str, torch.Tensor],
             data_samples: Optional[List] = None) -> Dict[str, torch.Tensor]:
        """The contrastive loss of a batch of image-text pairs, against the memory queue if any.

        ``logit_scale`` is first clamped to [0, ``max_logit_scale``] in place, so every loss
        uses a clamped value also without :class:`LogitScaleClampHook`, which clamps after
        every optimizer step (as CLIP does), so that checkpoints hold a clamped value. With a
        queue, the momentum towers also encode the batch (no gradient; unless
        ``encode_momentum_batch`` is off and the loss does not need them);
        :class:`MemoryQueueHook` enqueues those features after the step.

        Args:
            inputs (dict): ``images`` (B, 3, H, W), ``text_ids`` (B, L) and
                optionally ``labels`` (B, C) in [0, 1]. Without labels every
                pair is an ordinary negative (plain CLIP InfoNCE).
            data_samples (list, optional): Unused.

        Returns:
            dict: ``loss`` and, for logging, ``logit_scale`` (``exp(logit_scale)``), the
            queue's fill ratio (``queue_fill``) and the loss module's ``log_vars`` (for the
            WSCL family: the two directions' losses ``i2t`` and ``t2i``, the shares of
            in-batch and queue pairs eliminated as false negatives ``eliminated`` and
            ``eliminated_queue``, the mean pair weight ``mean_weight``), all tensors.
        """
        missing = {'images', 'text_ids'} - set(inputs)
        if missing:
            raise KeyError(f'ViLReF.loss needs images and text_ids; the batch lacks '
                           f'{sorted(missing)} (check the pipeline packs them)')
        self.clamp_logit_scale()
        images, text_ids = inputs['images'], inputs['text_ids']
        image_feats = self.extract_image_feat(images)
        text_feats = self.extract_text_feat(text_ids)
        labels = inputs.get('labels')
        if labels is None:
            num_classes = 1 if self.memory_queue is None else self.memory_queue.labels.size(1)
            labels = image_feats.new_zeros(image_feats.size(0), num_classes)
        if self.memory_queue is not None and labels.size(1) != self.memory_queue.labels.size(1):
            raise ValueError(
                f'ViLReF: the batch has label vectors of length {labels.size(1)} but the memory '
                f'queue stores {self.memory_queue.labels.size(1)}; set model.num_classes to the '
                "number of the dataset's classes")
        scale = self.logit_scale.exp()
        losses = {}
        if self.memory_queue is None:
            losses['loss'] = self.loss_module(image_feats, text_feats, labels, scale)
        else:
            needs_momentum_feats = getattr(self.loss_module, 'needs_momentum_feats', False)
            momentum_feats = {}
            if self.encode_momentum_batch or needs_momentum_feats:
                momentum_image_feats, momentum_text_feats = self.extract_momentum_feats(
                    images, text_ids)
                if self.encode_momentum_batch:
                    self._momentum_batch = (momentum_image_feats, momentum_text_feats,
                                            labels.detach())
                if needs_momentum_feats:
                    momentum_feats = dict(momentum_image_feats=momentum_image_feats,
                                          momentum_text_feats=momentum_text_feats)
            losses['loss'] = self.loss_module(image_feats, text_feats, labels, scale,
                                              *self.memory_queue.filled(), **momentum_feats)
            losses['queue_fill'] = self.memory_queue.num_filled / self.memory_queue.size
        losses['logit_scale'] = scale.detach()
        losses.update(getattr(self.loss_module, 'log_vars', {}))
        return losses

    def parse_losses(self, losses: Dict[str, torch.Tensor]
                     ) -> Tuple[torch.Tensor, Dict[str, torch.Tensor]]:
        """As :meth:`BaseModel.parse_losses`, with the logged values averaged over the ranks.

        Each rank's ``loss`` is its share of the global batch's loss (what DDP's gradient
        averaging needs) and is returned unchanged; the logged values become those of the
        global batch, the same as one process with the whole batch would log.
        """
        loss, log_vars = super().parse_losses(losses)
        if is_distributed():
            values = torch.stack(
                [value.detach().to(loss.device, torch.float32) for value in log_vars.values()])
            all_reduce(values, op='mean')
            log_vars = OrderedDict(zip(log_vars, values))
        return loss, log_vars

    @torch.no_grad()
    def extract_momentum_feats(self, images: torch.Tensor,
                               text_ids: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """L2-normalised (B, D) image and text features of the momentum towers, without
        gradients (what the memory queue stores)."""
        image_feats = self._project_image(self.momentum_image_encoder,
                                          self.momentum_image_projection, images)
        text_feats = self.momentum_text_encoder(text_ids) @ self.momentum_text_projection
        return F.normalize(image_feats, dim=-1), F.normalize(text_feats, dim=-1)

    def compile_towers(self, **kwargs) -> None:
        """Compile the image and text towers (and their momentum copies) in place with
        ``torch.compile`` (``nn.Module.compile``: parameters, state dict keys and the
        momentum update are unchanged). :class:`~vilref_mm.engine.ViLReFRunner` calls it for
        the config's ``compile`` setting.

        Args:
            **kwargs: Options of :func:`torch.compile`.
        """
        for name in ('image_encoder', 'text_encoder', 'momentum_image_encoder',
                     'momentum_text_encoder'):
            tower = getattr(self, name, None)
            if tower is not None:
                tower.compile(**kwargs)

    def pop_momentum_batch(self) -> Optional[Tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        """This rank's momentum image and text features and labels of the last training
        batch, which the model then forgets; None when the batch was not encoded."""
        batch, self._momentum_batch = self._momentum_batch, None
        return batch

    @torch.no_grad()
    def enqueue_momentum_batch(
            self, batch: Optional[Tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = None
    ) -> None:
        """Enqueue momentum features and labels, gathered from all ranks (every rank holds
        the same queue). Called by :class:`MemoryQueueHook`.

        Args:
            batch (tuple, optional): What :meth:`pop_momentum_batch` returned for a batch.
                Defaults to the last training batch's (nothing when it was not encoded).
        """
        batch = self.pop_momentum_batch() if batch is None else batch
        if batch is not None:
            self.memory_queue.enqueue(*(torch.cat(all_gather(t)) for t in batch))

    def predict(self, inputs: Dict[str, torch.Tensor], data_samples: Optional[List] = None):
        """Zero-shot classification with the prompts of ``zero_shot``.

        Args:
            inputs (dict): ``images`` (B, 3, H, W), normalised.
            data_samples (list[DataSample], optional): The batch's samples.

        Returns:
            list[DataSample]: With ``pred_score`` (per class) and, for multi-class,
            ``pred_label``.
        """
        if self.zero_shot is None:
            raise ValueError(
                "ViLReF.predict needs class prompts: set model.zero_shot=dict(class_names=..., "
                "mode='multilabel' or 'multiclass') in the config (docs/zero_shot.md)")
        return self.zero_shot.predict(self, self.extract_image_feat(inputs['images']),
                                      data_samples)
