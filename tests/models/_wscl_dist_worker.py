"""Helper of test_wscl_distributed.py: the contrastive losses under DDP on CPU (gloo).

Run as a script, it is one rank: for each loss of :data:`LOSSES`, without and with a queue,
it runs forward and backward of a tiny dual encoder wrapped in DistributedDataParallel on
its shard of a fixed global batch, and rank 0 saves every rank's loss and logged values and
the DDP-averaged parameter gradients to ``--out``. Imported, it provides the same problem
and the single-process computation on the whole global batch.
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
from mmengine.logging import MessageHub
from torch.nn.parallel import DistributedDataParallel

import vilref_mm.models  # noqa: F401  registers the losses
from mmpretrain.registry import MODELS

GLOBAL_BATCH = 8
IMAGE_DIM, TEXT_DIM, EMBED_DIM = 6, 7, 4
NUM_CLASSES = 5
QUEUE_SIZE = 6
#: The losses whose contract is tested, by name.
LOSSES = {
    'clip': dict(type='WeightedSimilarityCouplingLoss', gamma=0.0),
    'hard': dict(type='WeightedSimilarityCouplingLoss', gamma=0.0, hard=True),
    'wscl': dict(type='WeightedSimilarityCouplingLoss', gamma=1.0),
    'wscl_soft_jaccard_smoothing': dict(type='WeightedSimilarityCouplingLoss', gamma=1.0,
                                        similarity='soft_jaccard', label_smoothing=0.1),
    'soft_targets': dict(type='LabelSoftTargetLoss', similarity='soft_jaccard',
                         one_hot_weight=0.3),
    'distillation': dict(type='MomentumDistillationLoss', ramp_iters=10, alpha=0.4,
                         gamma=1.0, label_smoothing=0.1),
}
#: The training iteration the distillation loss reads (alpha_t = 0.4 * 4 / 10).
ITERATION = 4


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
    """The model, its momentum copy, a global batch and optionally a queue, all
    deterministic."""
    generator = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    model = TinyDualEncoder()
    momentum_model = TinyDualEncoder().requires_grad_(False)
    images = torch.randn(GLOBAL_BATCH, IMAGE_DIM, generator=generator)
    texts = torch.randn(GLOBAL_BATCH, TEXT_DIM, generator=generator)
    labels = (torch.rand(GLOBAL_BATCH, NUM_CLASSES, generator=generator) <
              0.4).float()
    labels[0, 0] = 1  # sample 0 is labelled
    labels[1] = labels[0]  # a false negative within rank 0's shard
    labels[6] = labels[0]  # and across shards
    labels[3] = 0  # unlabelled samples
    labels[5] = 0
    labels[2] = 0.5 * labels[0]  # uncertain findings: cosine 1, soft Jaccard 0.5
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
    return model, momentum_model, images, texts, labels, queue


def loss_and_grads(loss_cfg: dict, model: nn.Module, momentum_model: nn.Module,
                   images: torch.Tensor, texts: torch.Tensor, labels: torch.Tensor,
                   queue: Optional[Tuple[torch.Tensor, ...]]
                   ) -> Tuple[torch.Tensor, Dict[str, torch.Tensor], Dict[str, torch.Tensor]]:
    """One forward/backward at :data:`ITERATION`; ``model`` may be wrapped in DDP.

    Returns:
        tuple: The loss, the parameter gradients and the loss's logged values.
    """
    MessageHub.get_current_instance().update_info('iter', ITERATION)
    loss_fn = MODELS.build(loss_cfg)
    image_feats, text_feats, scale = model(images, texts)
    momentum_feats = {}
    if loss_fn.needs_momentum_feats:
        momentum_image_feats, momentum_text_feats, _ = momentum_model(images, texts)
        momentum_feats = dict(momentum_image_feats=momentum_image_feats,
                              momentum_text_feats=momentum_text_feats)
    loss = loss_fn(image_feats, text_feats, labels, scale, *(queue or ()), **momentum_feats)
    loss.backward()
    module = model.module if isinstance(model, DistributedDataParallel) \
        else model
    return loss.detach(), {
        name: param.grad.detach().clone()
        for name, param in module.named_parameters()
    }, loss_fn.log_vars


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
    for name, loss_cfg in LOSSES.items():
        for with_queue in (False, True):
            model, momentum_model, images, texts, labels, queue = make_problem(with_queue)
            loss, grads, log_vars = loss_and_grads(
                loss_cfg, DistributedDataParallel(model), momentum_model, images[shard],
                texts[shard], labels[shard], queue)
            # The loss and the logged values of every rank, in this order.
            values = torch.stack([loss, *(value.to(loss.dtype) for value in log_vars.values())])
            gathered = [torch.zeros_like(values) for _ in range(world_size)]
            dist.all_gather(gathered, values)
            gathered = torch.stack(gathered)
            results[name, with_queue] = {
                'losses': gathered[:, 0],
                'log_vars': dict(zip(log_vars, gathered[:, 1:].unbind(1))),
                'grads': grads}
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
