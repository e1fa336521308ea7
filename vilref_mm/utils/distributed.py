"""Distributed helpers for ViLReF's contrastive losses and momentum towers, and the batch sizes
of a run."""
from typing import Optional

import torch
import torch.distributed as dist
from mmengine.dist import get_world_size
from torch.distributed.tensor import DTensor
from torch.utils.data import DataLoader


class _AllGatherWithGrad(torch.autograd.Function):
    """All-gather along dim 0 whose backward sums the gradients of all ranks.

    Forward is one ``all_gather_into_tensor``; backward one ``reduce_scatter_tensor``, which
    moves half the bytes of an all-reduce and returns only this rank's rows.
    (``torch.distributed.nn.functional.all_gather`` is deprecated.)
    """

    @staticmethod
    def forward(ctx, tensor: torch.Tensor) -> torch.Tensor:
        tensor = tensor.contiguous()
        gathered = tensor.new_empty((get_world_size() * tensor.size(0), *tensor.shape[1:]))
        dist.all_gather_into_tensor(gathered, tensor)
        return gathered

    @staticmethod
    def backward(ctx, grad_output: torch.Tensor) -> torch.Tensor:
        grad_output = grad_output.contiguous()
        grad = grad_output.new_empty((grad_output.size(0) // get_world_size(),
                                      *grad_output.shape[1:]))
        dist.reduce_scatter_tensor(grad, grad_output)
        return grad


def all_gather_with_grad(tensor: torch.Tensor) -> torch.Tensor:
    """Concatenate ``tensor`` from all ranks along dim 0, keeping autograd.

    The backward pass sums, over all ranks, the gradient that each rank's
    loss sends to this rank's rows and returns that sum. With every rank
    holding the same number of rows and DDP averaging parameter gradients
    over W ranks, the result equals the gradient of the mean of the ranks'
    losses, i.e. the single-process gradient on the global batch when each
    rank's loss covers its local anchors (open_clip's "local loss").

    Args:
        tensor (torch.Tensor): This rank's tensor; the same shape on every
            rank.

    Returns:
        torch.Tensor: The rows of rank 0, then rank 1, ...; ``tensor``
        itself when not running distributed (or with one rank).
    """
    if get_world_size() == 1:
        return tensor
    return _AllGatherWithGrad.apply(tensor)


def as_layout_of(tensor: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """``tensor`` laid out as ``like``: the whole value of a sharded ``tensor`` (a DTensor
    under FSDP) when ``like`` is a plain tensor (a collective: every rank must call it),
    else ``tensor`` itself.

    Args:
        tensor (torch.Tensor): A tensor or DTensor.
        like (torch.Tensor): The tensor whose layout to match.

    Returns:
        torch.Tensor: ``tensor`` or its whole value.
    """
    if isinstance(tensor, DTensor) and not isinstance(like, DTensor):
        return tensor.full_tensor()
    return tensor


def batch_size_per_process(dataloader: DataLoader) -> Optional[int]:
    """The samples a batch of ``dataloader`` holds in one process.

    ``dataloader.batch_size``, or its batch sampler's ``batch_size`` when it is built with a
    ``batch_sampler`` (then ``dataloader.batch_size`` is None).

    Args:
        dataloader (DataLoader): A dataloader.

    Returns:
        int | None: The batch size; None when neither gives one.
    """
    if dataloader.batch_size is not None:
        return dataloader.batch_size
    return getattr(dataloader.batch_sampler, 'batch_size', None)


def global_batch_size(dataloader: DataLoader) -> Optional[int]:
    """The samples one iteration takes over all ranks: :func:`batch_size_per_process` times
    the world size (None when the batch size is unknown)."""
    batch = batch_size_per_process(dataloader)
    return None if batch is None else batch * get_world_size()
