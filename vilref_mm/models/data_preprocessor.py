"""Batching and normalisation of ViLReF's image-text inputs."""
from numbers import Number
from typing import Optional, Sequence, Union

import torch
from mmpretrain.models.utils import ClsDataPreprocessor
from mmpretrain.registry import MODELS

#: CLIP's RGB mean and standard deviation on the 0-255 scale.
CLIP_MEAN = (0.48145466 * 255, 0.4578275 * 255, 0.40821073 * 255)
CLIP_STD = (0.26862954 * 255, 0.26130258 * 255, 0.27577711 * 255)

TensorOrList = Union[torch.Tensor, Sequence[torch.Tensor]]


def _same_shapes(tensors: Sequence[torch.Tensor]) -> bool:
    return all(t.shape == tensors[0].shape for t in tensors)


def _stack(tensors: TensorOrList, key: str) -> torch.Tensor:
    """Stack per-sample tensors on their device (the host, in a dataloader)."""
    if isinstance(tensors, torch.Tensor):
        return tensors
    if not _same_shapes(tensors):
        shapes = sorted({tuple(t.shape) for t in tensors})
        raise ValueError(
            f"ViLReFDataPreprocessor: inputs['{key}'] holds tensors of different shapes "
            f'{shapes}; tokenise every text to the same context length and give every '
            'sample a label vector of the same length')
    return torch.stack(list(tensors))


@MODELS.register_module()
class ViLReFDataPreprocessor(ClsDataPreprocessor):
    """Data preprocessor of :class:`ViLReF`: stack, move to the device, normalise.

    ``data['inputs']`` is either a list of image tensors (a plain mmpretrain
    pipeline) or a dict of per-sample lists ``{'images': [...], 'text_ids':
    [...], 'labels': [...]}`` (any subset of the keys), as packed by the
    pre-training pipeline. Each entry is stacked on the host and copied to the
    model's device once; images are then converted to float, flipped from BGR
    to RGB if ``to_rgb`` and normalised (on the device, so uint8 images travel
    at a quarter of the float size). Images of different sizes fall back to
    mmpretrain's per-sample path, which pads them to a common size. Data
    samples are handled as by :class:`mmpretrain.models.ClsDataPreprocessor`.

    Args:
        mean (Sequence[Number]): Per-channel mean (RGB, 0-255 scale).
            Defaults to CLIP's.
        std (Sequence[Number]): Per-channel standard deviation. Defaults to
            CLIP's.
        to_rgb (bool): Flip the channels of 3-channel images (mmcv loads
            BGR). Defaults to True.
        non_blocking (bool): Copy to the device asynchronously (from the
            dataloader's pinned memory, ``pin_memory=True``: the host does not
            wait for the copy). Defaults to True.
        **kwargs: Other arguments of ``ClsDataPreprocessor``
            (``pad_size_divisor``, ``pad_value``, ``to_onehot``,
            ``num_classes``, ``batch_augments``).

    Returns (of :meth:`forward`):
        dict: ``inputs`` as a dict with the batched tensors present:
        ``images`` (B, 3, H, W) float, ``text_ids`` (B, L) long and
        ``labels`` (B, C) float; ``data_samples`` as given (on the device).
    """

    def __init__(self,
                 mean: Sequence[Number] = CLIP_MEAN,
                 std: Sequence[Number] = CLIP_STD,
                 to_rgb: bool = True,
                 non_blocking: bool = True,
                 **kwargs) -> None:
        super().__init__(mean=mean, std=std, to_rgb=to_rgb, **kwargs)
        self._non_blocking = non_blocking

    def forward(self, data: dict, training: bool = False) -> dict:
        """Batch and normalise ``data`` (see the class docstring)."""
        inputs = data['inputs']
        if not isinstance(inputs, dict):
            inputs = {'images': inputs}
        unknown = set(inputs) - {'images', 'text_ids', 'labels'}
        if unknown:
            raise KeyError(f'ViLReFDataPreprocessor: unexpected input keys {sorted(unknown)}; '
                           "expected 'images', 'text_ids' and/or 'labels'")
        data_samples: Optional[list] = data.get('data_samples')
        batch = {}
        if inputs.get('images') is not None:
            images = inputs['images']
            if isinstance(images, torch.Tensor) or _same_shapes(images):
                images = _stack(images, 'images')
            processed = super().forward({'inputs': images, 'data_samples': data_samples},
                                        training)
            batch['images'] = processed['inputs']
            data_samples = processed['data_samples']
        elif data_samples is not None:
            data_samples = self.cast_data(data_samples)
        if inputs.get('text_ids') is not None:
            batch['text_ids'] = self.cast_data(_stack(inputs['text_ids'], 'text_ids')).long()
        if inputs.get('labels') is not None:
            batch['labels'] = self.cast_data(_stack(inputs['labels'], 'labels')).float()
        return {'inputs': batch, 'data_samples': data_samples}
