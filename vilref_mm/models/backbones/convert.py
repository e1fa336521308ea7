"""Map the released ``visual.*`` weights (ViLReF, Chinese-CLIP, RET-CLIP) onto the backbones."""
import math
import re
from typing import Dict, List, Mapping, NamedTuple, Optional

import torch

from .modified_resnet import ViLReFModifiedResNet
from .vit import ViLReFViT

#: ViT keys of the release (without ``visual.``) -> :class:`ViLReFViT` names.
_VIT_RULES = (
    (r'conv1\.weight', 'patch_embed.projection.weight'),
    (r'class_embedding', 'cls_token'),
    (r'positional_embedding', 'pos_embed'),
    (r'ln_pre\.(weight|bias)', r'pre_norm.\1'),
    (r'ln_post\.(weight|bias)', r'ln1.\1'),
    (r'transformer\.resblocks\.(\d+)\.ln_([12])\.(weight|bias)', r'layers.\1.ln\2.\3'),
    (r'transformer\.resblocks\.(\d+)\.attn\.in_proj_(weight|bias)', r'layers.\1.attn.qkv.\2'),
    (r'transformer\.resblocks\.(\d+)\.attn\.out_proj\.(weight|bias)', r'layers.\1.attn.proj.\2'),
    (r'transformer\.resblocks\.(\d+)\.mlp\.c_fc\.(weight|bias)', r'layers.\1.ffn.layers.0.0.\2'),
    (r'transformer\.resblocks\.(\d+)\.mlp\.c_proj\.(weight|bias)', r'layers.\1.ffn.layers.1.\2'),
)

#: Width of one attention head in the released encoders (cn-clip's ``vision_head_width``).
HEAD_WIDTH = 64


class VisualWeights(NamedTuple):
    """The image encoder part of a released checkpoint, in the plugin's layout.

    Attributes:
        backbone_cfg (dict): Config that builds the matching backbone
            (``ViLReFViT`` or ``ViLReFModifiedResNet``) with its output for the
            contrastive tower (``ln_post(CLS)`` / attention pool).
        state_dict (dict): The backbone's weights under its parameter names.
        projection (torch.Tensor | None): The ViT's image projection
            ``visual.proj`` (width x embed dim, used as ``x @ W``); None for
            the ModifiedResNet, whose projection is inside its attention pool.
    """
    backbone_cfg: dict
    state_dict: Dict[str, torch.Tensor]
    projection: Optional[torch.Tensor]


def _strip_visual_prefix(state_dict: Mapping[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """Drop the ``visual.`` prefix, which all keys or none must carry."""
    others = sorted(k for k in state_dict if not k.startswith('visual.'))
    if len(others) == len(state_dict):
        return dict(state_dict)
    if others:
        raise KeyError(
            f'the image encoder weights mix `visual.*` keys with {len(others)} other keys '
            f'({others[:10]}): pass only the `visual.*` entries of the checkpoint')
    return {k[len('visual.'):]: v for k, v in state_dict.items()}


def _count_blocks(weights: Mapping[str, torch.Tensor], prefix: str) -> int:
    """Number of blocks ``{prefix}{i}.*`` (largest index + 1; 0 if none)."""
    pattern = re.compile(re.escape(prefix) + r'(\d+)\.')
    return 1 + max((int(m.group(1)) for m in map(pattern.match, weights) if m), default=-1)


def _vit_cfg(weights: Mapping[str, torch.Tensor]) -> dict:
    width, _, patch_size, _ = weights['conv1.weight'].shape
    grid = math.isqrt(weights['positional_embedding'].shape[0] - 1)
    return dict(
        type='ViLReFViT',
        arch=dict(
            embed_dims=width,
            num_layers=_count_blocks(weights, 'transformer.resblocks.'),
            num_heads=width // HEAD_WIDTH,
            feedforward_channels=weights['transformer.resblocks.0.mlp.c_fc.weight'].shape[0]),
        img_size=grid * patch_size,
        patch_size=patch_size,
        out_type='cls_token')


def _resnet_cfg(weights: Mapping[str, torch.Tensor]) -> dict:
    base_channels = weights['conv3.weight'].shape[0]
    embed_dims = weights['attnpool.positional_embedding'].shape[1]
    grid = math.isqrt(weights['attnpool.positional_embedding'].shape[0] - 1)
    return dict(
        type='ViLReFModifiedResNet',
        stage_blocks=tuple(_count_blocks(weights, f'layer{i}.') for i in range(1, 5)),
        base_channels=base_channels,
        num_heads=embed_dims // HEAD_WIDTH,
        output_dim=weights['attnpool.c_proj.weight'].shape[0],
        img_size=grid * 32,
        out_indices=4)


def _map_vit(weights: Mapping[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    rules = [(re.compile(pattern), target) for pattern, target in _VIT_RULES]
    mapped, unmatched = {}, []
    for key, value in weights.items():
        for pattern, target in rules:
            if pattern.fullmatch(key):
                mapped[pattern.sub(target, key)] = value
                break
        else:
            unmatched.append(key)
    if unmatched:
        raise KeyError(f'unexpected ViT image encoder keys (no mapping): {sorted(unmatched)}')
    mapped['cls_token'] = mapped['cls_token'].reshape(1, 1, -1)
    mapped['pos_embed'] = mapped['pos_embed'].unsqueeze(0)
    return mapped


def state_dict_mismatches(expected: Mapping[str, torch.Tensor],
                          weights: Mapping[str, torch.Tensor]) -> List[str]:
    """What keeps ``weights`` from loading strictly where ``expected`` is the state dict:
    missing and unexpected keys and wrong shapes (up to 10 of each), as readable phrases."""
    missing = sorted(set(expected) - set(weights))
    unexpected = sorted(set(weights) - set(expected))
    wrong_shape = [f'{k}: {tuple(weights[k].shape)} != {tuple(expected[k].shape)}'
                   for k in sorted(set(expected) & set(weights))
                   if weights[k].shape != expected[k].shape]
    return [f'{name} ({len(keys)}) {keys[:10]}' for name, keys in (
        ('missing', missing), ('unexpected', unexpected), ('wrong shapes', wrong_shape)) if keys]


def _check_against_model(cfg: dict, mapped: Mapping[str, torch.Tensor]) -> None:
    """Compare names and shapes with the backbone ``cfg`` builds (on the meta device)."""
    backbone_cls = {'ViLReFViT': ViLReFViT, 'ViLReFModifiedResNet': ViLReFModifiedResNet}
    kwargs = {k: v for k, v in cfg.items() if k != 'type'}
    with torch.device('meta'):
        expected = backbone_cls[cfg['type']](**kwargs).state_dict()
    problems = state_dict_mismatches(expected, mapped)
    if problems:
        raise KeyError(f'the image encoder weights do not fit {cfg["type"]}: '
                       f'{"; ".join(problems)}. Is the checkpoint complete and a ViLReF / '
                       'Chinese-CLIP / RET-CLIP one?')


def convert_visual_weights(state_dict: Mapping[str, torch.Tensor]) -> VisualWeights:
    """Map a release's image encoder weights onto :class:`ViLReFViT` / ``ViLReFModifiedResNet``.

    The architecture is detected from the keys (``transformer.resblocks.*``:
    ViT; ``attnpool.*``: ModifiedResNet) and its sizes from the shapes (one
    attention head per 64 channels, as in the releases). Tensors keep their
    dtype (releases may be fp16). ``module.`` prefixes must be removed first.

    Args:
        state_dict (Mapping[str, torch.Tensor]): The ``visual.*`` entries of
            a checkpoint, with or without the ``visual.`` prefix (all keys
            alike).

    Returns:
        VisualWeights: The backbone config, the mapped state dict (loads
        strictly into the backbone built from that config) and the ViT's image
        projection (None for the ModifiedResNet).

    Raises:
        KeyError: If keys of both kinds are mixed, the architecture cannot
            be told, or keys are unmatched, missing or of the wrong shape
            (the message lists them).
    """
    weights = _strip_visual_prefix(state_dict)
    is_vit = any(k.startswith('transformer.resblocks.') for k in weights)
    if not is_vit and not any(k.startswith('attnpool.') for k in weights):
        raise KeyError(
            'cannot tell the image encoder: expected ViT keys `transformer.resblocks.*` or '
            f'ModifiedResNet keys `attnpool.*`; got {sorted(weights)[:20]}')
    try:
        cfg = _vit_cfg(weights) if is_vit else _resnet_cfg(weights)
    except KeyError as err:
        raise KeyError(f'the {"ViT" if is_vit else "ModifiedResNet"} image encoder weights '
                       f'lack {err}, needed to infer the architecture') from err
    if is_vit:
        if 'proj' not in weights:
            raise KeyError('the ViT image encoder weights lack the image projection `proj`')
        projection = weights.pop('proj')
        mapped = _map_vit(weights)
    else:
        projection = None
        mapped = weights
    _check_against_model(cfg, mapped)
    return VisualWeights(cfg, mapped, projection)
