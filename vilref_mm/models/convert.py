"""Convert released ViLReF / Chinese-CLIP / RET-CLIP checkpoints to the plugin's layout.

The releases share one layout (see ``docs/model.md``): ``visual.*`` (a CLIP
ViT or ModifiedResNet), ``bert.*`` (Hugging Face BERT names),
``text_projection`` and ``logit_scale``, saved either bare or inside
``{'state_dict': ...}``, often with DDP's ``module.`` prefix and in fp16.
:func:`convert_release_state_dict` maps them onto :class:`ViLReF`
(``image_encoder.*``, ``image_projection``, ``text_encoder.bert.*``,
``text_projection``, ``logit_scale``); :func:`convert_checkpoint` does it from
file to file (the logic behind ``tools/model_converters/vilref_to_mm.py``).
"""
import copy
import re
from typing import Dict, List, Mapping, NamedTuple, Optional

import torch

from vilref_mm.utils.checkpoint import (CheckpointError, load_checkpoint_file,
                                        save_tensor_checkpoint)
from .backbones.convert import (HEAD_WIDTH, VisualWeights, convert_visual_weights,
                                state_dict_mismatches)
from .text.bert import ChineseBertEncoder

#: Width of one attention head of the released BERT text towers.
BERT_HEAD_WIDTH = 64

#: Attention-head width of the released ViT image encoders by their width, where it is not
#: :data:`HEAD_WIDTH` (64): Chinese-CLIP's ViT-H/14, 1280 wide, has 16 heads of 80 (cn-clip's
#: ``vision_head_width``). The number of heads is not in the weights' shapes.
VISION_HEAD_WIDTHS = {1280: 80}

#: Source keys of the model outside ``visual.*`` and ``bert.*``.
_TOP_LEVEL_KEYS = ('text_projection', 'logit_scale')


class CheckpointConversionError(ValueError):
    """A file or state dict is not a ViLReF / Chinese-CLIP / RET-CLIP checkpoint."""


class ConvertedCheckpoint(NamedTuple):
    """A release converted to the plugin's layout.

    Attributes:
        state_dict (dict): float32 weights of the whole :class:`ViLReF`.
        backbone_state_dict (dict): float32 weights of the image encoder
            alone, under the backbone's own names (no prefix).
        model_cfg (dict): The :class:`ViLReF` arguments the weights fit:
            ``image_encoder``, ``text_encoder``, ``embed_dims`` and
            ``image_projection``.
        unmatched (list[str]): Source keys that were ignored (besides the
            unused ``bert.pooler.*``).
    """
    state_dict: Dict[str, torch.Tensor]
    backbone_state_dict: Dict[str, torch.Tensor]
    model_cfg: dict
    unmatched: List[str]


def read_release_state_dict(filename: str) -> Dict[str, torch.Tensor]:
    """Read a released checkpoint safely and normalise its keys.

    Reads with ``torch.load(weights_only=True)``, takes ``state_dict`` if the
    file holds a dict with it, removes DDP's ``module.`` prefixes and drops
    the unused ``bert.pooler.*`` weights. Dtypes are kept.

    Args:
        filename (str): Path of the checkpoint.

    Returns:
        dict: The release's state dict with keys such as ``visual.conv1.weight``.

    Raises:
        FileNotFoundError: If the file does not exist.
        CheckpointConversionError: If it is not a torch checkpoint holding a
            dict of tensors.
    """
    try:
        checkpoint = load_checkpoint_file(filename)
    except CheckpointError as err:
        raise CheckpointConversionError(str(err)) from err
    state_dict = checkpoint
    if isinstance(checkpoint, Mapping) and 'state_dict' in checkpoint:
        state_dict = checkpoint['state_dict']
    if not isinstance(state_dict, Mapping) or not state_dict:
        raise CheckpointConversionError(
            f'{filename}: holds {type(state_dict).__name__}, not a (non-empty) state dict; '
            'expected a ViLReF / Chinese-CLIP / RET-CLIP checkpoint, a dict of tensors or a '
            "dict with the key 'state_dict'")
    not_tensors = sorted(str(k) for k, v in state_dict.items() if not isinstance(v, torch.Tensor))
    if not_tensors:
        raise CheckpointConversionError(
            f'{filename}: entries {not_tensors[:10]} of the state dict are not tensors; '
            'expected a ViLReF / Chinese-CLIP / RET-CLIP checkpoint')
    state_dict = {re.sub(r'^(module\.)+', '', str(key)): value
                  for key, value in state_dict.items()}
    return {key: value for key, value in state_dict.items() if not key.startswith('bert.pooler.')}


def _bert_cfg(weights: Mapping[str, torch.Tensor]) -> dict:
    """``BertConfig`` arguments of released ``bert.*`` weights (without the prefix)."""
    try:
        vocab_size, hidden_size = weights['embeddings.word_embeddings.weight'].shape
        layers = {int(m.group(1)) for m in map(re.compile(r'encoder\.layer\.(\d+)\.').match,
                                              weights) if m}
        return dict(
            vocab_size=vocab_size,
            hidden_size=hidden_size,
            num_hidden_layers=max(layers) + 1 if layers else 0,
            num_attention_heads=hidden_size // BERT_HEAD_WIDTH,
            intermediate_size=weights['encoder.layer.0.intermediate.dense.weight'].shape[0],
            max_position_embeddings=weights['embeddings.position_embeddings.weight'].shape[0],
            type_vocab_size=weights['embeddings.token_type_embeddings.weight'].shape[0])
    except KeyError as err:
        raise CheckpointConversionError(
            f'the text encoder weights `bert.*` lack {err}, needed to infer the BERT '
            'configuration; is the checkpoint complete?') from err


def _check_text_weights(bert_cfg: dict, weights: Mapping[str, torch.Tensor]) -> None:
    """Compare names and shapes with the text encoder ``bert_cfg`` builds (on the meta device)."""
    with torch.device('meta'):
        expected = ChineseBertEncoder(bert_cfg=bert_cfg).bert.state_dict()
    problems = state_dict_mismatches(expected, weights)
    if problems:
        raise CheckpointConversionError(
            f'the text encoder weights `bert.*` do not fit a BERT with {bert_cfg}: '
            + '; '.join(problems))


def _image_encoder_cfg(image: VisualWeights, head_width: Optional[int]) -> dict:
    """The image encoder's config with attention heads ``head_width`` wide (None: by
    :data:`VISION_HEAD_WIDTHS` for a ViT, else :data:`HEAD_WIDTH`)."""
    cfg = copy.deepcopy(image.backbone_cfg)
    if cfg['type'] == 'ViLReFViT':
        heads_cfg, width = cfg['arch'], cfg['arch']['embed_dims']
        default_head_width = VISION_HEAD_WIDTHS.get(width, HEAD_WIDTH)
    else:
        heads_cfg = cfg
        width = image.state_dict['attnpool.positional_embedding'].shape[1]
        default_head_width = HEAD_WIDTH
    head_width = default_head_width if head_width is None else head_width
    if head_width <= 0 or width % head_width:
        raise CheckpointConversionError(
            f'the {cfg["type"]} image encoder is {width} wide: attention heads {head_width} '
            'wide do not divide it; give the width of its heads (vision_head_width, '
            '--vision-head-width of tools/model_converters/vilref_to_mm.py)')
    heads_cfg['num_heads'] = width // head_width
    return cfg


def _to_float32(weights: Mapping[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """Floating-point tensors as contiguous float32 (integer buffers unchanged)."""
    return {
        key: (value.float() if value.is_floating_point() else value).contiguous()
        for key, value in weights.items()
    }


def convert_release_state_dict(state_dict: Mapping[str, torch.Tensor],
                               vision_head_width: Optional[int] = None) -> ConvertedCheckpoint:
    """Map a release's state dict onto :class:`ViLReF`.

    The image encoder (ViT or ModifiedResNet, any width, depth, patch size
    and resolution) and the BERT size are detected from the keys and shapes;
    the result loads strictly into the model built from
    ``ConvertedCheckpoint.model_cfg`` and into the configs of the releases
    (``configs/_base_/models/``, docs/model.md).

    Args:
        state_dict (Mapping[str, torch.Tensor]): Output of
            :func:`read_release_state_dict` (no ``module.`` prefixes).
        vision_head_width (int, optional): Width of one attention head of the
            image encoder, which the shapes do not tell. Defaults to None: 80
            for a 1280-wide ViT (Chinese-CLIP ViT-H/14), else 64.

    Returns:
        ConvertedCheckpoint: The converted weights, float32.

    Raises:
        CheckpointConversionError: If a part of the model is missing or does
            not fit (the message lists the keys).
    """
    visual = {k: v for k, v in state_dict.items() if k.startswith('visual.')}
    bert = {k[len('bert.'):]: v for k, v in state_dict.items() if k.startswith('bert.')}
    missing = [name for name, present in (
        ('visual.*', visual), ('bert.*', bert),
        *((key, key in state_dict) for key in _TOP_LEVEL_KEYS)) if not present]
    if missing:
        raise CheckpointConversionError(
            f'not a ViLReF / Chinese-CLIP / RET-CLIP checkpoint: it lacks {missing}; its keys '
            f'start with {sorted(state_dict)[:10]}')
    unmatched = sorted(k for k in state_dict
                       if k not in _TOP_LEVEL_KEYS and not k.startswith(('visual.', 'bert.')))

    try:
        image = convert_visual_weights(visual)
    except KeyError as err:
        raise CheckpointConversionError(err.args[0] if err.args else str(err)) from err
    bert_cfg = _bert_cfg(bert)
    _check_text_weights(bert_cfg, bert)

    text_projection = state_dict['text_projection']
    embed_dims = text_projection.shape[-1]
    if text_projection.shape != (bert_cfg['hidden_size'], embed_dims):
        raise CheckpointConversionError(
            f'text_projection has shape {tuple(text_projection.shape)}; expected '
            f"({bert_cfg['hidden_size']}, D) for the BERT width {bert_cfg['hidden_size']}")
    image_width = (image.projection.shape[-1] if image.projection is not None else
                   image.state_dict['attnpool.c_proj.weight'].shape[0])
    if image_width != embed_dims:
        raise CheckpointConversionError(
            f'the image embedding has {image_width} dimensions but the text embedding '
            f'(text_projection) {embed_dims}; the checkpoint mixes two models')

    converted = {f'image_encoder.{k}': v for k, v in image.state_dict.items()}
    if image.projection is not None:
        converted['image_projection'] = image.projection
    converted.update({f'text_encoder.bert.{k}': v for k, v in bert.items()})
    converted['text_projection'] = text_projection
    converted['logit_scale'] = state_dict['logit_scale'].reshape(())
    model_cfg = dict(
        image_encoder=_image_encoder_cfg(image, vision_head_width),
        text_encoder=dict(type='ChineseBertEncoder', bert_cfg=bert_cfg),
        embed_dims=embed_dims,
        image_projection=image.projection is not None)
    return ConvertedCheckpoint(
        _to_float32(converted), _to_float32(image.state_dict), model_cfg, unmatched)


def convert_checkpoint(src: str, dst: str, backbone_only: bool = False,
                       vision_head_width: Optional[int] = None) -> ConvertedCheckpoint:
    """Convert a released checkpoint file into a tensor-only plugin checkpoint.

    Args:
        src (str): ViLReF / Chinese-CLIP / RET-CLIP checkpoint (read with
            ``weights_only=True``).
        dst (str): Output path, written atomically in float32: a safetensors
            file for a ``.safetensors`` name, else ``{'state_dict': ...}``.
        backbone_only (bool): Write only the image encoder, under the
            backbone's own names, for ``init_cfg=dict(type='Pretrained',
            checkpoint=dst)`` of a classification or segmentation backbone.
            Defaults to False (the whole :class:`ViLReF`, for ``load_from``).
        vision_head_width (int, optional): See
            :func:`convert_release_state_dict`. Defaults to None.

    Returns:
        ConvertedCheckpoint: What was converted (and the ignored keys).
    """
    try:
        converted = convert_release_state_dict(read_release_state_dict(src), vision_head_width)
    except CheckpointConversionError as err:
        message = str(err)
        raise CheckpointConversionError(
            message if message.startswith(src) else f'{src}: {message}') from err
    save_tensor_checkpoint(
        converted.backbone_state_dict if backbone_only else converted.state_dict, dst)
    return converted
