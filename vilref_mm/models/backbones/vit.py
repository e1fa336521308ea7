"""The CLIP-style ViT image encoder of ViLReF, for pre-training, probing and segmentation."""
from typing import Sequence, Tuple, Union

import torch
from mmpretrain.models.backbones import VisionTransformer
from mmpretrain.models.utils import resize_pos_embed
from mmpretrain.registry import MODELS
from mmseg.registry import MODELS as SEG_MODELS
from torch.utils.checkpoint import checkpoint

from vilref_mm.utils.checkpoint import CheckpointRuleInitMixin


@MODELS.register_module()
@SEG_MODELS.register_module()
class ViLReFViT(CheckpointRuleInitMixin, VisionTransformer):
    """Vision Transformer with CLIP's settings, FLIP patch dropout and checkpointing.

    mmpretrain's :class:`VisionTransformer` configured as the ViT of CLIP /
    Chinese-CLIP / ViLReF (patch convolution without bias, class token,
    ``pre_norm`` before the first block, QuickGELU MLP, LayerNorm eps 1e-5 and
    a final LayerNorm ``ln1``), plus:

    - random patch dropout in training (FLIP): after the position embeddings
      are added, each sample keeps ``max(1, int(N * (1 - mask_ratio)))`` of
      its ``N`` patch tokens, chosen at random; the class token is always
      kept. Nothing is dropped in eval mode or when ``mask_ratio`` is 0;
    - gradient checkpointing of every block (``with_cp``) when training with
      gradients enabled.

    Attention runs through ``F.scaled_dot_product_attention`` (mmpretrain's
    :class:`MultiheadAttention` on torch >= 2). Position embeddings are
    bicubically resized to the patch grid of each input (any height and
    width), the class-token entry kept.

    Parameter names are mmpretrain's: ``patch_embed.projection`` (CLIP
    ``conv1``), ``cls_token``, ``pos_embed``, ``pre_norm`` (``ln_pre``),
    ``layers.i`` and ``ln1`` (``ln_post``); see
    :func:`vilref_mm.models.backbones.convert_visual_weights`.

    Args:
        arch (str | dict): An mmpretrain ViT arch name ('b' is ViT-B: 768
            wide, 12 layers, 12 heads, MLP 3072; 'l' ViT-L: 1024, 24, 16,
            4096; 'h' ViT-H: 1280, 32, 16 heads of 80, 5120; Chinese-CLIP's
            ViT-L/14 and ViT-H/14 with ``patch_size=14``) or a dict with
            ``embed_dims``, ``num_layers``, ``num_heads`` and
            ``feedforward_channels``. Defaults to 'b'.
        img_size (int | tuple): Input size the position embeddings are stored
            for. Defaults to 224.
        patch_size (int): Defaults to 16.
        out_indices (int | Sequence[int]): Blocks whose outputs are returned,
            e.g. ``(3, 5, 7, 11)`` for segmentation. The final LayerNorm is
            applied to the output of the last block only. Defaults to -1.
        out_type (str): 'cls_token' (B, C), 'featmap' (B, C, H/p, W/p),
            'avg_featmap' (B, C) or 'raw' (B, 1 + N, C). 'cls_token' of the
            last block is ``ln_post(CLS)``, the image feature before the
            projection. Defaults to 'cls_token'.
        mask_ratio (float): Fraction of patch tokens dropped per sample in
            training, in [0, 1). Not allowed with ``out_type='featmap'``.
            Defaults to 0.
        with_cp (bool): Recompute every block in backward instead of storing
            its activations. Defaults to False.
        act_cfg (dict): Activation of the MLPs. Defaults to QuickGELU.
        norm_cfg (dict): Defaults to LayerNorm with eps 1e-5.
        pre_norm (bool): LayerNorm before the first block. Defaults to True.
        final_norm (bool): LayerNorm after the last block. Defaults to True.
        layer_cfgs (dict | Sequence[dict]): Extra arguments of the encoder
            layers (all of them, or one dict per layer). Defaults to {}.
        **kwargs: Other arguments of mmpretrain's :class:`VisionTransformer`
            (``drop_path_rate``, ``frozen_stages``, ``init_cfg`` ...).
    """

    def __init__(self,
                 arch: Union[str, dict] = 'b',
                 img_size: Union[int, Tuple[int, int]] = 224,
                 patch_size: int = 16,
                 out_indices: Union[int, Sequence[int]] = -1,
                 out_type: str = 'cls_token',
                 mask_ratio: float = 0.,
                 with_cp: bool = False,
                 act_cfg: dict = dict(type='mmpretrain.QuickGELU'),
                 norm_cfg: dict = dict(type='LN', eps=1e-5),
                 pre_norm: bool = True,
                 final_norm: bool = True,
                 layer_cfgs: Union[dict, Sequence[dict]] = dict(),
                 **kwargs) -> None:
        if not 0 <= mask_ratio < 1:
            raise ValueError(f'mask_ratio must be in [0, 1), got {mask_ratio}')
        if mask_ratio > 0 and out_type == 'featmap':
            raise ValueError(
                "mask_ratio > 0 drops patch tokens, so out_type='featmap' cannot be formed: "
                "use mask_ratio=0 for dense outputs")
        if isinstance(out_indices, int):
            out_indices = [out_indices]
        layer_cfgs = ({'act_cfg': act_cfg, **layer_cfgs} if isinstance(layer_cfgs, dict) else
                      [{'act_cfg': act_cfg, **cfg} for cfg in layer_cfgs])
        super().__init__(
            arch=arch,
            img_size=img_size,
            patch_size=patch_size,
            out_indices=list(out_indices),
            out_type=out_type,
            norm_cfg=norm_cfg,
            pre_norm=pre_norm,
            final_norm=final_norm,
            layer_cfgs=layer_cfgs,
            **kwargs)
        self.mask_ratio = mask_ratio
        self.with_cp = with_cp

    def train(self, mode: bool = True) -> 'ViLReFViT':
        """Set the training mode and return the module, as ``nn.Module.train`` does.

        mmpretrain's ``BaseBackbone.train`` returns None, which breaks
        ``model.eval()`` / ``model.train()`` chaining.
        """
        super().train(mode)
        return self

    def patch_dropout(self, x: torch.Tensor) -> torch.Tensor:
        """Keep a random subset of the patch tokens of each sample (training only).

        Args:
            x (torch.Tensor): (B, num_extra_tokens + N, C) tokens.

        Returns:
            torch.Tensor: (B, num_extra_tokens + K, C), the extra (class)
            tokens first, then the kept patch tokens in their original order.
        """
        if not self.training or self.mask_ratio == 0:
            return x
        extra_tokens = x[:, :self.num_extra_tokens]
        patch_tokens = x[:, self.num_extra_tokens:]
        batch_size, num_patches, channels = patch_tokens.shape
        num_keep = max(1, int(num_patches * (1 - self.mask_ratio)))
        keep = torch.rand(batch_size, num_patches, device=x.device).argsort(dim=1)[:, :num_keep]
        keep = keep.sort(dim=1).values
        patch_tokens = patch_tokens.gather(1, keep.unsqueeze(-1).expand(-1, -1, channels))
        return torch.cat([extra_tokens, patch_tokens], dim=1)

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        """Encode images.

        Args:
            x (torch.Tensor): (B, 3, H, W) normalised images.

        Returns:
            tuple[torch.Tensor]: One output of ``out_type`` per entry of
            ``out_indices``.
        """
        x, patch_resolution = self.patch_embed(x)
        if self.cls_token is not None:
            x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1)
        x = x + resize_pos_embed(
            self.pos_embed,
            self.patch_resolution,
            patch_resolution,
            mode=self.interpolate_mode,
            num_extra_tokens=self.num_extra_tokens)
        x = self.drop_after_pos(x)
        x = self.patch_dropout(x)
        x = self.pre_norm(x)

        use_checkpoint = self.with_cp and self.training and torch.is_grad_enabled()
        outs = []
        for i, layer in enumerate(self.layers):
            x = checkpoint(layer, x, use_reentrant=False) if use_checkpoint else layer(x)
            if i == len(self.layers) - 1 and self.final_norm:
                x = self.ln1(x)
            if i in self.out_indices:
                outs.append(self._format_output(x, patch_resolution))
        return tuple(outs)
