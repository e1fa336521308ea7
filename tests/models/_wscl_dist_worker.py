"""Helper of test_wscl_distributed.py: WSCL under DDP on CPU (gloo).

Run as a script, it is one rank: it runs forward and backward of a tiny dual
encoder wrapped in DistributedDataParallel on its shard of a fixed global
batch, without and with a queue, and rank 0 saves every rank's loss and the
DDP-averaged parameter gradients to ``--out``. Imported, it provides the same
problem and the single-process computation on the whole global batch.
"""
import argparse
import math
import os
import tempfile
from datetime import timedelta
from typing import Dict, Optional, Tuple

import torch
import torch.distributed as dist
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel

from vilref_mm.models.losses import WeightedSimilarityCouplingLoss

GLOBAL_BATCH = 8
IMAGE_DIM, TEXT_DIM, EMBED_DIM = 6, 7, 4
NUM_CLASSES = 5
QUEUE_SIZE = 6


class TinyDualEncoder(nn.Module):
    """Two linear 'encoders' with a learnable temperature."""

    def __init__(self) -> None:
        super().__init__()
        self.image_proj = nn.Linear(IMAGE_DIM, EMBED_DIM)
        self.text_proj = nn.Linear(TEXT_DIM, EMBED_DIM)
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1 / 0.07)))

    def forward(self, images: torch.Tensor, texts: torch.Tensor):
        return (F.normalize(self.image_proj(images), dim=-1),
                F.normalize(self.text_proj(texts), dim=-1),
                self.logit_scale.exp())


def make_problem(with_queue: bool):
    """The model, a global batch and optionally a queue, all deterministic."""
    generator = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    model = TinyDualEncoder()
    images = torch.randn(GLOBAL_BATCH, IMAGE_DIM, generator=generator)
    texts = torch.randn(GLOBAL_BATCH, TEXT_DIM, generator=generator)
    labels = (torch.rand(GLOBAL_BATCH, NUM_CLASSES, generator=generator) <
              0.4).float()
    labels[0, 0] = 1  # sample 0 is labelled
    labels[1] = labels[0]  # a false negative within rank 0's shard
    labels[6] = labels[0]  # and across shards
    labels[3] = 0  # unlabelled samples
    labels[5] = 0
    queue = None
    if with_queue:
        queue_labels = (torch.rand(QUEUE_SIZE, NUM_CLASSES,
                                   generator=generator) < 0.4).float()
        queue_labels[0] = labels[0]
        queue_labels[1] = 0
        queue = (F.normalize(
            torch.randn(QUEUE_SIZE, EMBED_DIM, generator=generator), dim=1),
                 F.normalize(
                     torch.randn(QUEUE_SIZE, EMBED_DIM, generator=generator),
                     dim=1), queue_labels)
    return model, images, texts, labels, queue


def loss_and_grads(model: nn.Module, images: torch.Tensor,
                   texts: torch.Tensor, labels: torch.Tensor,
                   queue: Optional[Tuple[torch.Tensor, ...]]
                   ) -> Tuple[torch.Tensor, Dict[str, torch.Tensor]]:
    """One forward/backward; ``model`` may be wrapped in DDP."""
    image_feats, text_feats, scale = model(images, texts)
    loss = WeightedSimilarityCouplingLoss(gamma=1.0)(
        image_feats, text_feats, labels, scale, *(queue or ()))
    loss.backward()
    module = model.module if isinstance(model, DistributedDataParallel) \
        else model
    return loss.detach(), {
        name: param.grad.detach().clone()
        for name, param in module.named_parameters()
    }


def run_rank(rank: int, world_size: int, port: int, out: str) -> None:
    """Compute this rank's losses and gradients; rank 0 saves them."""
    torch.set_num_threads(1)
    dist.init_process_group(
        'gloo',
        init_method=f'tcp://127.0.0.1:{port}',
        rank=rank,
        world_size=world_size,
        timeout=timedelta(seconds=120))
    shard = slice(rank * GLOBAL_BATCH // world_size,
                  (rank + 1) * GLOBAL_BATCH // world_size)
    results = {}
    for with_queue in (False, True):
        model, images, texts, labels, queue = make_problem(with_queue)
        loss, grads = loss_and_grads(
            DistributedDataParallel(model), images[shard], texts[shard],
            labels[shard], queue)
        losses = [torch.zeros_like(loss) for _ in range(world_size)]
        dist.all_gather(losses, loss)
        results[with_queue] = {'losses': torch.stack(losses), 'grads': grads}
    if rank == 0:
        fd, tmp = tempfile.mkstemp(dir=os.path.dirname(out), suffix='.tmp')
        os.close(fd)
        torch.save(results, tmp)
        os.replace(tmp, out)
    dist.destroy_process_group()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument('--rank', type=int, required=True)
    parser.add_argument('--world-size', type=int, required=True)
    parser.add_argument('--port', type=int, required=True)
    parser.add_argument('--out', required=True)
    args = parser.parse_args()
    run_rank(args.rank, args.world_size, args.port, args.out)


if __name__ == '__main__':
    main()
