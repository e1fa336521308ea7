"""The Chinese BERT text encoder of ViLReF (RoBERTa-wwm-ext-base-chinese and its RBT3 and
large variants)."""
from typing import Optional

import torch
from mmengine.model import BaseModule
from mmpretrain.registry import MODELS
from transformers import BertConfig, BertModel

from vilref_mm.utils.checkpoint import CheckpointRuleInitMixin

#: RoBERTa-wwm-ext-base-chinese, the text tower of the ViLReF and Chinese-CLIP
#: ViT-B/16 and RN50 releases, as Hugging Face ``BertConfig`` arguments.
ROBERTA_WWM_EXT_BASE_CHINESE = dict(
    vocab_size=21128,
    hidden_size=768,
    num_hidden_layers=12,
    num_attention_heads=12,
    intermediate_size=3072,
    hidden_act='gelu',
    hidden_dropout_prob=0.1,
    attention_probs_dropout_prob=0.1,
    max_position_embeddings=512,
    type_vocab_size=2,
    initializer_range=0.02,
    layer_norm_eps=1e-12,
    pad_token_id=0)


POOLINGS = ('cls', 'mean')


@MODELS.register_module()
class ChineseBertEncoder(CheckpointRuleInitMixin, BaseModule):
    """BERT text encoder returning the final hidden state of ``[CLS]`` (or the mean over
    the tokens).

    A ``transformers.BertModel`` without pooler, with SDPA attention, built
    from a config dict (nothing is downloaded). Its parameters are under
    ``bert.*`` with Hugging Face's names, i.e. the release's ``bert.*`` keys
    load one to one. Padding tokens (id ``pad_token_id``) are masked out of
    the attention.

    Args:
        bert_cfg (dict, optional): ``BertConfig`` arguments overriding
            :data:`ROBERTA_WWM_EXT_BASE_CHINESE`, e.g.
            ``dict(num_hidden_layers=2)`` for a tiny CPU demo,
            ``dict(num_hidden_layers=3)`` for RBT3 or ``dict(hidden_size=1024,
            num_hidden_layers=24, num_attention_heads=16,
            intermediate_size=4096)`` for RoBERTa-wwm-ext-large-chinese.
            Defaults to None.
        with_cp (bool): Gradient checkpointing of every layer (recomputes
            the layers in backward instead of storing activations; training
            mode only). Defaults to False.
        pooling (str): 'cls' (the final hidden state of ``[CLS]``, as the
            release) or 'mean' (the mean over the non-padding tokens: a
            text feature that differs between texts from the first step, for
            training small towers from scratch). Defaults to 'cls'.
        init_cfg (dict, optional): mmengine init config, e.g.
            ``dict(type='Pretrained', checkpoint=..., prefix=...)``.
            Defaults to None (BERT's own initialisation).
    """

    def __init__(self,
                 bert_cfg: Optional[dict] = None,
                 with_cp: bool = False,
                 pooling: str = 'cls',
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        if pooling not in POOLINGS:
            raise ValueError(f'ChineseBertEncoder: pooling must be one of {POOLINGS}, '
                             f'got {pooling!r}')
        self.pooling = pooling
        config = BertConfig(**{**ROBERTA_WWM_EXT_BASE_CHINESE, **(bert_cfg or {})},
                            attn_implementation='sdpa')
        self.bert = BertModel(config, add_pooling_layer=False)
        self.pad_token_id = config.pad_token_id
        self.with_cp = with_cp
        if with_cp:
            # transformers >= 5.24 renamed gradient to activation checkpointing
            if hasattr(self.bert, 'activation_checkpointing_enable'):
                self.bert.activation_checkpointing_enable(
                    activation_checkpointing_kwargs=dict(use_reentrant=False))
            else:
                self.bert.gradient_checkpointing_enable(
                    gradient_checkpointing_kwargs=dict(use_reentrant=False))

    @property
    def embed_dims(self) -> int:
        """Width of the output feature (the hidden size)."""
        return self.bert.config.hidden_size

    def forward(self, text_ids: torch.Tensor) -> torch.Tensor:
        """Encode token ids.

        Args:
            text_ids (torch.Tensor): (B, L) token ids, ``[CLS]`` first,
                padded with ``pad_token_id``.

        Returns:
            torch.Tensor: (B, hidden_size) text features (see ``pooling``).
        """
        attention_mask = text_ids.ne(self.pad_token_id)
        hidden = self.bert(input_ids=text_ids,
                           attention_mask=attention_mask.long()).last_hidden_state
        if self.pooling == 'cls':
            return hidden[:, 0]
        weights = attention_mask.unsqueeze(-1).to(hidden.dtype)
        return (hidden * weights).sum(1) / weights.sum(1).clamp_min(1)
