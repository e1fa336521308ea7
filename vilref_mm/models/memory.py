"""ViLReF's batch expansion: a FIFO memory queue of momentum features and their labels."""
from typing import Tuple

import torch
from torch import nn


class MemoryQueue(nn.Module):
    """A FIFO queue of image features, text features and label vectors.

    The queue, its write pointer and its fill count are persistent buffers, so a checkpoint
    holds them and resuming restores them exactly. Slots never written are not handed out:
    :meth:`filled` returns only the written entries. The pointer and the fill count are also
    mirrored as Python integers, so reading or writing the queue in the training step never
    waits for the device.

    Args:
        size (int): Number of entries K.
        embed_dims (int): Feature dimension D.
        num_classes (int): Length C of the label vectors.
    """

    def __init__(self, size: int, embed_dims: int, num_classes: int) -> None:
        super().__init__()
        if size <= 0:
            raise ValueError(f'MemoryQueue: size must be positive, got {size}')
        self.size = size
        self.register_buffer('image_feats', torch.zeros(size, embed_dims))
        self.register_buffer('text_feats', torch.zeros(size, embed_dims))
        self.register_buffer('labels', torch.zeros(size, num_classes))
        self.register_buffer('ptr', torch.zeros((), dtype=torch.long))
        self.register_buffer('num_filled', torch.zeros((), dtype=torch.long))
        self._ptr = 0
        self._num_filled = 0

    @property
    def fill(self) -> int:
        """Number of entries written so far (at most ``size``)."""
        return self._num_filled

    def filled(self) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The written entries: image features (n, D), text features (n, D), labels (n, C)."""
        n = self._num_filled
        return self.image_feats[:n], self.text_feats[:n], self.labels[:n]

    @torch.no_grad()
    def enqueue(self, image_feats: torch.Tensor, text_feats: torch.Tensor,
                labels: torch.Tensor) -> None:
        """Write a batch over the oldest entries (wrapping around the end).

        Args:
            image_feats (torch.Tensor): (B, D) image features.
            text_feats (torch.Tensor): (B, D) text features.
            labels (torch.Tensor): (B, C) label vectors.
        """
        batch = image_feats.size(0)
        if batch > self.size:
            raise ValueError(f'MemoryQueue: a batch of {batch} does not fit a queue of '
                             f'{self.size}; make model.queue_size a multiple of the global '
                             'batch size')
        slots = (torch.arange(batch, device=self.ptr.device) + self._ptr) % self.size
        self.image_feats.index_copy_(0, slots, image_feats.to(self.image_feats.dtype))
        self.text_feats.index_copy_(0, slots, text_feats.to(self.text_feats.dtype))
        self.labels.index_copy_(0, slots, labels.to(self.labels.dtype))
        self._ptr = (self._ptr + batch) % self.size
        self._num_filled = min(self._num_filled + batch, self.size)
        self.ptr.fill_(self._ptr)
        self.num_filled.fill_(self._num_filled)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs) -> None:
        stored = state_dict.get(prefix + 'image_feats')
        if stored is not None and stored.size(0) != self.size:
            # A non-strict load (MMEngine's load_from) would skip the entries with a warning
            # but keep the pointer and fill count: zeros would enter the loss as negatives.
            raise ValueError(
                f'{prefix}image_feats: the checkpoint holds a queue of {stored.size(0)} '
                f'entries, the model one of {self.size}; set model.queue_size='
                f'{stored.size(0)}, or drop the {prefix}* entries to start with an empty queue')
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
        self._ptr = int(self.ptr)
        self._num_filled = int(self.num_filled)

    def extra_repr(self) -> str:
        return (f'size={self.size}, embed_dims={self.image_feats.size(1)}, '
                f'num_classes={self.labels.size(1)}')
