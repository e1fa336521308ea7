"""ViLReF: the CLIP-style dual encoder (image tower, Chinese BERT text tower)."""
import math
from typing import Dict, List, Optional, Sequence, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.model import BaseModel
from mmpretrain.registry import MODELS, TOKENIZER

Texts = Union[str, Sequence[str], torch.Tensor]


@MODELS.register_module()
class ViLReF(BaseModel):
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
            ``loss(image_feats, text_feats, labels, scale)``. Defaults to WSCL
            with ``gamma=1``.
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

    @torch.no_grad()
    def clamp_logit_scale(self) -> None:
        """Clamp ``logit_scale`` to [0, ``max_logit_scale``] in place (after an optimizer step)."""
        self.logit_scale.clamp_(0, self.max_logit_scale)

    def encode_image(self, images: torch.Tensor) -> torch.Tensor:
        """Projected, not normalised image features.

        Args:
            images (torch.Tensor): (B, 3, H, W) normalised images.

        Returns:
            torch.Tensor: (B, D) features.
        """
        feats = self.image_encoder(images)
        if isinstance(feats, (tuple, list)):
            feats = feats[-1]
        if self.image_projection is not None:
            feats = feats @ self.image_projection
        return feats

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
        """The contrastive loss of a batch of image-text pairs.

        Args:
            inputs (dict): ``images`` (B, 3, H, W), ``text_ids`` (B, L) and
                optionally ``labels`` (B, C) in [0, 1]. Without labels every
                pair is an ordinary negative (plain CLIP InfoNCE).
            data_samples (list, optional): Unused.

        Returns:
            dict: ``loss`` and, for logging, ``logit_scale`` (the current
            ``exp(logit_scale)``, detached).
        """
        missing = {'images', 'text_ids'} - set(inputs)
        if missing:
            raise KeyError(f'ViLReF.loss needs images and text_ids; the batch lacks '
                           f'{sorted(missing)} (check the pipeline packs them)')
        image_feats = self.extract_image_feat(inputs['images'])
        text_feats = self.extract_text_feat(inputs['text_ids'])
        labels = inputs.get('labels')
        if labels is None:
            labels = image_feats.new_zeros(image_feats.size(0), 1)
        scale = self.logit_scale.exp()
        loss = self.loss_module(image_feats, text_feats, labels, scale)
        return {'loss': loss, 'logit_scale': scale.detach()}

    def predict(self, inputs: Dict[str, torch.Tensor], data_samples: Optional[List] = None):
        """Zero-shot classification (not available yet).

        Raises:
            NotImplementedError: Always: no class prompts can be configured
                yet. Use ``mode='tensor'``, :meth:`extract_image_feat` and
                :meth:`extract_text_feat` for embeddings.
        """
        raise NotImplementedError(
            'ViLReF.predict (zero-shot classification) needs class prompts, which cannot be '
            "configured yet; use mode='tensor', extract_image_feat() and extract_text_feat() "
            'to compute embeddings')
