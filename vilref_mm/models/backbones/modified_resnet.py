"""CLIP's ModifiedResNet image encoder (the RN50 variant of ViLReF)."""
import contextlib
from collections import OrderedDict
from functools import partial
from typing import Iterator, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmcv.cnn import build_norm_layer
from mmengine.model import BaseModule
from mmpretrain.models.utils import resize_pos_embed
from mmpretrain.registry import MODELS
from mmseg.registry import MODELS as SEG_MODELS
from torch.nn.modules.batchnorm import _BatchNorm
from torch.utils.checkpoint import checkpoint

from vilref_mm.utils.checkpoint import CheckpointRuleInitMixin


@contextlib.contextmanager
def keep_running_stats(module: nn.Module) -> Iterator[None]:
    """Run ``module`` without changing its BatchNorm running statistics.

    Used for the recomputation of gradient checkpointing, so that a
    checkpointed block updates the statistics once per step, not twice.
    """
    norms = [m for m in module.modules() if isinstance(m, _BatchNorm) and m.track_running_stats]
    saved = [(m.momentum, m.num_batches_tracked.clone()) for m in norms]
    for norm in norms:
        norm.momentum = 0.  # running = (1 - 0) * running + 0 * batch statistic
    try:
        yield
    finally:
        for norm, (momentum, num_batches_tracked) in zip(norms, saved):
            norm.momentum = momentum
            norm.num_batches_tracked.copy_(num_batches_tracked)


def _checkpoint_contexts(block: nn.Module) -> tuple:
    """Contexts of the forward pass and of the recomputation of a checkpointed block."""
    return contextlib.nullcontext(), keep_running_stats(block)


class AntiAliasedBottleneck(BaseModule):
    """CLIP's bottleneck: all convolutions have stride 1, an average pool downsamples.

    The main path pools after ``conv2``; the shortcut, when present, is
    ``downsample = {'-1': AvgPool2d, '0': 1x1 conv, '1': norm}``, the key
    layout of the CLIP / Chinese-CLIP / ViLReF checkpoints.

    Args:
        in_channels (int): Input channels.
        planes (int): Bottleneck width; the block outputs ``4 * planes``.
        stride (int): Downsampling factor. Defaults to 1.
        norm_cfg (dict): Normalisation layers. Defaults to BatchNorm.
        init_cfg (dict, optional): Defaults to None.
    """
    expansion = 4

    def __init__(self,
                 in_channels: int,
                 planes: int,
                 stride: int = 1,
                 norm_cfg: dict = dict(type='BN'),
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        out_channels = planes * self.expansion
        self.conv1 = nn.Conv2d(in_channels, planes, 1, bias=False)
        self.bn1 = build_norm_layer(norm_cfg, planes)[1]
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.bn2 = build_norm_layer(norm_cfg, planes)[1]
        self.avgpool = nn.AvgPool2d(stride) if stride > 1 else nn.Identity()
        self.conv3 = nn.Conv2d(planes, out_channels, 1, bias=False)
        self.bn3 = build_norm_layer(norm_cfg, out_channels)[1]
        self.relu = nn.ReLU(inplace=True)
        self.downsample = None
        if stride > 1 or in_channels != out_channels:
            self.downsample = nn.Sequential(OrderedDict([
                ('-1', nn.AvgPool2d(stride)),
                ('0', nn.Conv2d(in_channels, out_channels, 1, bias=False)),
                ('1', build_norm_layer(norm_cfg, out_channels)[1]),
            ]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C_in, H, W) -> (B, 4 * planes, H / stride, W / stride)."""
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(self.avgpool(out)))
        return self.relu(out + identity)


class AttentionPool2d(BaseModule):
    """CLIP's attention pooling: the mean token attends to all tokens of the map.

    Args:
        grid_size (int): Side of the feature map the position embeddings are
            stored for (7 for 224 px); other map sizes are resized bicubically, and so are
            embeddings of another grid in a loaded state dict.
        embed_dims (int): Channels of the feature map.
        num_heads (int): Attention heads.
        output_dim (int): Output channels (the projection ``c_proj``).
        init_cfg (dict, optional): Defaults to None.
    """

    def __init__(self,
                 grid_size: int,
                 embed_dims: int,
                 num_heads: int,
                 output_dim: int,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        if embed_dims % num_heads:
            raise ValueError(f'embed_dims {embed_dims} is not divisible by num_heads {num_heads}')
        self.grid_size = grid_size
        self.num_heads = num_heads
        self.positional_embedding = nn.Parameter(
            torch.randn(grid_size**2 + 1, embed_dims) / embed_dims**0.5)
        self.k_proj = nn.Linear(embed_dims, embed_dims)
        self.q_proj = nn.Linear(embed_dims, embed_dims)
        self.v_proj = nn.Linear(embed_dims, embed_dims)
        self.c_proj = nn.Linear(embed_dims, output_dim)
        self._register_load_state_dict_pre_hook(self._resize_loaded_pos_embed)

    def _resize_loaded_pos_embed(self, state_dict: dict, prefix: str, *args) -> None:
        """Fit position embeddings stored for another grid (e.g. a 224 px release loaded
        into a 448 px model) to this one, bicubically, as the ViT does."""
        name = prefix + 'positional_embedding'
        stored = state_dict.get(name)
        if stored is None or stored.shape == self.positional_embedding.shape:
            return
        stored_grid = round((stored.shape[0] - 1)**0.5)
        if stored.ndim != 2 or stored_grid**2 + 1 != stored.shape[0]:
            return  # not a (1 + grid^2, C) table: load_state_dict reports the mismatch
        state_dict[name] = resize_pos_embed(
            stored.unsqueeze(0), (stored_grid, stored_grid), (self.grid_size, self.grid_size),
            mode='bicubic', num_extra_tokens=1)[0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) feature map -> (B, output_dim) pooled feature."""
        batch_size, channels, height, width = x.shape
        x = x.flatten(2).transpose(1, 2)  # (B, HW, C)
        x = torch.cat([x.mean(dim=1, keepdim=True), x], dim=1)  # (B, 1 + HW, C)
        pos_embed = resize_pos_embed(
            self.positional_embedding.unsqueeze(0), (self.grid_size, self.grid_size),
            (height, width), mode='bicubic', num_extra_tokens=1)
        x = x + pos_embed.to(x.dtype)

        def heads(t: torch.Tensor) -> torch.Tensor:
            return t.unflatten(-1, (self.num_heads, -1)).transpose(1, 2)

        # Only the mean token's output is used, so only it needs a query.
        out = F.scaled_dot_product_attention(
            heads(self.q_proj(x[:, :1])), heads(self.k_proj(x)), heads(self.v_proj(x)))
        return self.c_proj(out.transpose(1, 2).reshape(batch_size, channels))


@MODELS.register_module()
@SEG_MODELS.register_module()
class ViLReFModifiedResNet(CheckpointRuleInitMixin, BaseModule):
    """CLIP's ModifiedResNet (RN50 by default) with multi-level outputs.

    Differences from a torchvision ResNet: a stem of three 3x3 convolutions
    with an average pool instead of a max pool; anti-aliased downsampling (an
    average pool before stride-1 convolutions); attention pooling instead of
    global average pooling. Parameter names equal the release's ``visual.*``
    keys without the prefix, and fp32 outputs equal cn-clip's
    ``ModifiedResNet``.

    Outputs, selected by ``out_indices``:

    - 0..3: the feature maps of ``layer1``..``layer4`` (for RN50: 256, 512,
      1024, 2048 channels at strides 4, 8, 16, 32), for segmentation;
    - 4: the attention-pool output, (B, output_dim), the image feature used
      for contrastive learning and linear probing (already projected: the
      RN50 variant has no separate image projection).

    The attention pool runs only when 4 is requested; otherwise its
    parameters are frozen (``requires_grad=False``) so that DDP does not
    wait for their gradients.

    Args:
        stage_blocks (Sequence[int]): Bottlenecks per stage. Defaults to
            (3, 4, 6, 3) (ResNet-50).
        base_channels (int): Stem width; stage ``i`` has
            ``base_channels * 2**i * 4`` output channels. Defaults to 64.
        num_heads (int): Heads of the attention pool. Defaults to 32.
        output_dim (int): Output of the attention pool. Defaults to 1024.
        img_size (int): Input size the attention pool's position embeddings
            are stored for (the grid is ``img_size // 32``); other sizes are
            resized bicubically. Defaults to 224.
        out_indices (int | Sequence[int]): See above. Defaults to 4.
        norm_cfg (dict): Normalisation layers, e.g. ``dict(type='SyncBN')``
            for segmentation. Defaults to BatchNorm.
        with_cp (bool): Recompute every bottleneck in backward instead of
            storing its activations (training with gradients only; the
            recomputation leaves the BatchNorm running statistics alone).
            Defaults to False.
        init_cfg (dict, optional): Defaults to None.
    """

    def __init__(self,
                 stage_blocks: Sequence[int] = (3, 4, 6, 3),
                 base_channels: int = 64,
                 num_heads: int = 32,
                 output_dim: int = 1024,
                 img_size: int = 224,
                 out_indices: Union[int, Sequence[int]] = 4,
                 norm_cfg: dict = dict(type='BN'),
                 with_cp: bool = False,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        if len(stage_blocks) != 4:
            raise ValueError(f'stage_blocks must list 4 stages, got {stage_blocks}')
        out_indices = (out_indices, ) if isinstance(out_indices, int) else tuple(out_indices)
        if not out_indices or any(not 0 <= i <= 4 for i in out_indices):
            raise ValueError(
                f'out_indices must be in 0..4 (4 = attention pool), got {out_indices}')
        self.out_indices = out_indices
        self.with_cp = with_cp

        stem_channels = base_channels // 2
        self.conv1 = nn.Conv2d(3, stem_channels, 3, stride=2, padding=1, bias=False)
        self.bn1 = build_norm_layer(norm_cfg, stem_channels)[1]
        self.conv2 = nn.Conv2d(stem_channels, stem_channels, 3, padding=1, bias=False)
        self.bn2 = build_norm_layer(norm_cfg, stem_channels)[1]
        self.conv3 = nn.Conv2d(stem_channels, base_channels, 3, padding=1, bias=False)
        self.bn3 = build_norm_layer(norm_cfg, base_channels)[1]
        self.avgpool = nn.AvgPool2d(2)
        self.relu = nn.ReLU(inplace=True)

        in_channels = base_channels
        self.stage_names = []
        for i, num_blocks in enumerate(stage_blocks):
            planes = base_channels * 2**i
            blocks = []
            for j in range(num_blocks):
                stride = 2 if i > 0 and j == 0 else 1
                blocks.append(AntiAliasedBottleneck(in_channels, planes, stride, norm_cfg))
                in_channels = planes * AntiAliasedBottleneck.expansion
            self.add_module(f'layer{i + 1}', nn.Sequential(*blocks))
            self.stage_names.append(f'layer{i + 1}')

        self.attnpool = AttentionPool2d(img_size // 32, in_channels, num_heads, output_dim)
        if 4 not in out_indices:
            self.attnpool.requires_grad_(False)

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        """Encode images.

        Args:
            x (torch.Tensor): (B, 3, H, W) normalised images.

        Returns:
            tuple[torch.Tensor]: One output per entry of ``out_indices``.
        """
        for conv, bn in ((self.conv1, self.bn1), (self.conv2, self.bn2), (self.conv3, self.bn3)):
            x = self.relu(bn(conv(x)))
        x = self.avgpool(x)

        use_checkpoint = self.with_cp and self.training and torch.is_grad_enabled()
        outs = {}
        for i, name in enumerate(self.stage_names):
            for block in getattr(self, name):
                if use_checkpoint:
                    x = checkpoint(block, x, use_reentrant=False,
                                   context_fn=partial(_checkpoint_contexts, block))
                else:
                    x = block(x)
            outs[i] = x
        if 4 in self.out_indices:
            outs[4] = self.attnpool(x)
        return tuple(outs[i] for i in self.out_indices)
