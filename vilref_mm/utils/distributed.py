"""Distributed helpers for ViLReF's contrastive losses."""
import torch
import torch.distributed as dist
from mmengine.dist import get_rank, get_world_size


class _AllGatherWithGrad(torch.autograd.Function):
    """All-gather along dim 0 whose backward sums the gradients of all ranks.

    (``torch.distributed.nn.functional.all_gather`` does the same but is
    deprecated.)
    """

    @staticmethod
    def forward(ctx, tensor: torch.Tensor) -> torch.Tensor:
        tensor = tensor.contiguous()
        gathered = [torch.empty_like(tensor) for _ in range(get_world_size())]
        dist.all_gather(gathered, tensor)
        ctx.local_size = tensor.size(0)
        return torch.cat(gathered)

    @staticmethod
    def backward(ctx, grad_output: torch.Tensor) -> torch.Tensor:
        grad = grad_output.clone(memory_format=torch.contiguous_format)
        dist.all_reduce(grad)
        return grad.narrow(0, get_rank() * ctx.local_size, ctx.local_size)


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
