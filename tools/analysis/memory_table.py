"""Per-GPU memory of ViLReF pre-training, computed from sizes (docs/pretrain.md).

For each config: the online towers' parameters, the momentum towers and the memory queue are
counted on the built model; the activation memory of one training forward (image tower,
text tower, projections) is measured on the CPU as the bytes of the tensors kept for
backward (saved by autograd, plus the inputs of the blocks that gradient checkpointing
recomputes), unique storages only, at two batch sizes: a per-sample slope and a fixed part
(under autocast, the low-precision copies of the weights); with checkpointing, the backward
pass also holds the recomputed activations of one block, the largest a block keeps without
checkpointing. The WSCL loss's bytes per logit
are measured the same way. The per-GPU total for DDP, FSDP ``SHARD_GRAD_OP`` (ZeRO-2) and
``FULL_SHARD`` is then computed with :func:`per_gpu_bytes`. Example::

    python tools/analysis/memory_table.py \\
        configs/vilref/vilref_vit-b16_8xb32-20e_fundus-reports-224px.py --out memory.json
"""
import argparse
import copy
import json
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

import torch
from mmengine.config import Config
from mmengine.registry import DefaultScope
from mmpretrain.registry import MODELS
from torch import nn

import vilref_mm  # noqa: F401  registers the modules

STRATEGIES = ('DDP', 'SHARD_GRAD_OP', 'FULL_SHARD')
BATCH_SIZES = (32, 128, 256)
CAPACITIES_GIB = (24, 40, 80)
GIB = 2**30
#: Kept free on every GPU: 10 % of the memory for the allocator's fragmentation, plus the
#: CUDA context.
HEADROOM_FRACTION = 0.10
CUDA_CONTEXT_BYTES = 1 * GIB
FP32 = 4
ADAMW_STATES = 2


@dataclass
class ModelSizes:
    """What one GPU holds of a model, in elements and bytes."""

    name: str
    online_params: int  #: trainable parameters (towers, projections, logit scale)
    momentum_params: int  #: momentum towers and projections (no gradient, no optimizer)
    gathered_params: int  #: online parameters a FULL_SHARD rank gathers at a time
    queue_bytes: int  #: image features, text features and labels of the memory queue
    queue_size: int  #: K
    activation_bytes_per_sample: float  #: kept for backward, per sample of the batch
    activation_fixed_bytes: float  #: kept for backward whatever the batch
    recompute_bytes_per_sample: float  #: one block's activations recomputed in backward
    loss_bytes_per_logit: float  #: the WSCL loss's tensors per element of a (B, M) matrix


def load_config(path: str, with_cp: bool) -> Config:
    """The config with ``with_cp`` set on both towers."""
    cfg = Config.fromfile(path)
    cfg.model.image_encoder.with_cp = with_cp
    cfg.model.text_encoder.with_cp = with_cp
    return cfg


def build_model(model_cfg: dict, device: str = 'cpu') -> nn.Module:
    """Build a ViLReF model (on ``'meta'``: shapes only, no memory)."""
    with DefaultScope.overwrite_default_scope('mmpretrain'), torch.device(device):
        return MODELS.build(copy.deepcopy(model_cfg))


def _numel(params: Iterable[torch.Tensor]) -> int:
    return sum(param.numel() for param in params)


def transformer_blocks(model: nn.Module) -> List[nn.Module]:
    """The blocks of the online towers (ViT blocks, BERT layers): FSDP's wrapping units."""
    return [*model.image_encoder.layers, *model.text_encoder.bert.encoder.layer]


def count_parameters(model: nn.Module) -> Dict[str, int]:
    """Online (trainable) and momentum parameters, the queue's bytes and the parameters a
    FULL_SHARD rank holds gathered: the root unit (everything outside the blocks, kept
    gathered through the forward) plus two blocks (the running one and the prefetched)."""
    online = _numel(p for p in model.parameters() if p.requires_grad)
    momentum = _numel(tensor for name, tensor in
                      [*model.named_parameters(), *model.named_buffers()]
                      if name.startswith('momentum_') and tensor.is_floating_point())
    blocks = [_numel(block.parameters()) for block in transformer_blocks(model)]
    return dict(online_params=online, momentum_params=momentum,
                gathered_params=min(online - sum(blocks) + 2 * max(blocks), online),
                queue_bytes=sum(buffer.numel() * buffer.element_size()
                                for buffer in model.memory_queue.buffers()))


class KeptForBackward:
    """Collects the storages a forward keeps for backward: tensors saved by autograd and the
    inputs of the ``checkpointed`` modules (whose saved tensors are recomputed), except the
    storages of ``held`` (parameters, the queue: counted apart); :attr:`bytes` counts each
    storage once, :attr:`block_bytes` what each of the ``blocks`` added."""

    def __init__(self, held: Iterable[torch.Tensor], checkpointed: Sequence[nn.Module] = (),
                 blocks: Sequence[nn.Module] = ()) -> None:
        self._held_storages = {tensor.untyped_storage().data_ptr() for tensor in held}
        self._storages: Dict[int, int] = {}
        self._saved = torch.autograd.graph.saved_tensors_hooks(self._pack, lambda t: t)
        self._checkpointed = checkpointed
        self._blocks = blocks
        self._running_block: Optional[int] = None
        self.block_bytes = [0] * len(blocks)
        self._handles: List = []

    def _record(self, tensor: torch.Tensor) -> None:
        storage = tensor.untyped_storage()
        key = storage.data_ptr()
        if key not in self._held_storages and key not in self._storages:
            self._storages[key] = storage.nbytes()
            if self._running_block is not None:
                self.block_bytes[self._running_block] += storage.nbytes()

    def _enter_block(self, index: int) -> None:
        self._running_block = index

    def _exit_block(self) -> None:
        self._running_block = None

    def _pack(self, tensor: torch.Tensor) -> torch.Tensor:
        self._record(tensor)
        return tensor

    def _record_inputs(self, module: nn.Module, args: tuple, kwargs: dict) -> None:
        for value in (*args, *kwargs.values()):
            if isinstance(value, torch.Tensor):
                self._record(value)

    @property
    def bytes(self) -> int:
        return sum(self._storages.values())

    def __enter__(self) -> 'KeptForBackward':
        self._handles = [module.register_forward_pre_hook(self._record_inputs, with_kwargs=True)
                         for module in self._checkpointed]
        for index, block in enumerate(self._blocks):
            self._handles += [
                block.register_forward_pre_hook(lambda *_, i=index: self._enter_block(i)),
                block.register_forward_hook(lambda *_: self._exit_block())]
        self._saved.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self._saved.__exit__(*exc)
        for handle in self._handles:
            handle.remove()


def activation_bytes(model: nn.Module, batch: int, image_size: int, context_length: int,
                     amp: bool) -> Tuple[int, int]:
    """Bytes kept for backward by one training forward of both towers and projections, and
    the most that one block kept."""
    checkpointed = []
    if model.image_encoder.with_cp:
        checkpointed += list(model.image_encoder.layers)
    if model.text_encoder.with_cp:
        checkpointed += list(model.text_encoder.bert.encoder.layer)
    images = torch.randn(batch, 3, image_size, image_size)
    text_ids = torch.randint(1, model.text_encoder.bert.config.vocab_size,
                             (batch, context_length))
    model.train()
    with KeptForBackward(model.parameters(), checkpointed,
                         transformer_blocks(model)) as kept, \
            torch.autocast('cpu', dtype=torch.bfloat16, enabled=amp):
        model.extract_image_feat(images)
        model.extract_text_feat(text_ids)
    return kept.bytes, max(kept.block_bytes)


def loss_bytes_per_logit(loss_cfg: dict, embed_dims: int, num_classes: int,
                         batch: int = 64, queue_size: int = 1024) -> float:
    """Bytes kept for backward by the loss, per element of its (B, B + K) logit matrices
    (the queue itself excepted)."""
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        loss = MODELS.build(copy.deepcopy(loss_cfg))
    feats = [torch.randn(batch, embed_dims, requires_grad=True) for _ in range(2)]
    queue = [torch.randn(queue_size, embed_dims) for _ in range(2)]
    labels = (torch.rand(batch, num_classes) > 0.8).float()
    queue_labels = (torch.rand(queue_size, num_classes) > 0.8).float()
    with KeptForBackward([*queue, queue_labels]) as kept:
        loss(*feats, labels, torch.tensor(14.3), *queue, queue_labels)
    return kept.bytes / (batch * (batch + queue_size))


def disable_checkpointing(model: nn.Module) -> None:
    """Switch gradient checkpointing off in both towers of a built model."""
    model.image_encoder.with_cp = False
    model.text_encoder.with_cp = False
    bert = model.text_encoder.bert
    # transformers >= 5.24 renamed gradient to activation checkpointing
    if hasattr(bert, 'activation_checkpointing_disable'):
        bert.activation_checkpointing_disable()
    else:
        bert.gradient_checkpointing_disable()


def measure_config(config: str, amp: bool = True,
                   batches: Tuple[int, int] = (1, 2)) -> Dict[bool, ModelSizes]:
    """Count and measure one config with and without gradient checkpointing (keys:
    ``with_cp``): one model, built with ``with_cp=True``, then switched off."""
    cfg = load_config(config, with_cp=True)
    counts = count_parameters(build_model(cfg.model, 'meta'))
    online_cfg = copy.deepcopy(cfg.model)
    online_cfg.queue_size = 0  # the momentum towers hold no activations for backward
    model = build_model(online_cfg)
    image_size = cfg.model.image_encoder.img_size
    context_length = cfg.model.tokenizer.context_length
    step = batches[1] - batches[0]
    measured = {}
    for with_cp in (True, False):
        if not with_cp:
            disable_checkpointing(model)
        (low, low_block), (high, high_block) = (
            activation_bytes(model, batch, image_size, context_length, amp)
            for batch in batches)
        per_sample = (high - low) / step
        measured[with_cp] = (per_sample, max(low - per_sample * batches[0], 0.),
                             (high_block - low_block) / step)
    loss = loss_bytes_per_logit(cfg.model.loss, cfg.model.embed_dims,
                                cfg.model.get('num_classes', 25))
    return {
        with_cp: ModelSizes(
            name=Path(config).stem, queue_size=cfg.model.queue_size,
            activation_bytes_per_sample=measured[with_cp][0],
            activation_fixed_bytes=measured[with_cp][1],
            # with checkpointing, backward recomputes the largest block kept without it
            recompute_bytes_per_sample=measured[False][2] if with_cp else 0.,
            loss_bytes_per_logit=loss, **counts)
        for with_cp in (False, True)}


def per_gpu_bytes(sizes: ModelSizes, strategy: str, batch: int,
                  num_gpus: int) -> Dict[str, float]:
    """The parts of one GPU's memory, in bytes, for a per-GPU batch on ``num_gpus`` GPUs.

    With P online and P_m momentum parameters, N GPUs, per-GPU batch B, queue K, and the
    share g = 1/N under FSDP (else 1) of what FSDP shards (``ViLReFFSDPStrategy``):

    - parameters 4 P g, plus what a rank holds gathered: under FULL_SHARD the gathered units
      4 P_gathered, under SHARD_GRAD_OP every unit from its forward to its backward, 4 P;
    - gradients 4 P g, plus DDP's gradient buckets 4 P;
    - AdamW's two states 8 P g;
    - momentum towers 4 P_m g (sharded as the online parameters, updated shard-wise, and
      resharded after their forward under both FSDP strategies);
    - queue K (2 D + C) 4, on every GPU;
    - activations B a + a_0 (measured), plus with checkpointing B r, the activations of
      the largest block recomputed in backward (measured without checkpointing);
    - the loss's (B, N B + K) matrices, B (N B + K) l (l measured per logit).
    """
    share = 1 if strategy == 'DDP' else 1 / num_gpus
    params = FP32 * sizes.online_params
    gathered = dict(DDP=0, SHARD_GRAD_OP=params,
                    FULL_SHARD=FP32 * sizes.gathered_params)[strategy]
    return dict(
        parameters=params * share + gathered,
        gradients=params * share + (params if strategy == 'DDP' else 0),
        optimizer=ADAMW_STATES * params * share,
        momentum_towers=FP32 * sizes.momentum_params * share,
        queue=sizes.queue_bytes,
        activations=batch * (sizes.activation_bytes_per_sample
                             + sizes.recompute_bytes_per_sample)
        + sizes.activation_fixed_bytes,
        loss=batch * (num_gpus * batch + sizes.queue_size) * sizes.loss_bytes_per_logit)


def total_bytes(sizes: ModelSizes, strategy: str, batch: int, num_gpus: int) -> float:
    """The sum of :func:`per_gpu_bytes`."""
    return sum(per_gpu_bytes(sizes, strategy, batch, num_gpus).values())


def usable_bytes(capacity_gib: float) -> float:
    """What the training may use of a GPU: less the headroom and the CUDA context."""
    return capacity_gib * GIB * (1 - HEADROOM_FRACTION) - CUDA_CONTEXT_BYTES


def largest_batch(sizes: ModelSizes, strategy: str, num_gpus: int, capacity_gib: float,
                  limit: int = 1 << 16) -> int:
    """The largest per-GPU batch whose total fits :func:`usable_bytes` (0: none)."""
    budget = usable_bytes(capacity_gib)
    low, high = 0, limit
    while low < high:
        middle = (low + high + 1) // 2
        if total_bytes(sizes, strategy, middle, num_gpus) <= budget:
            low = middle
        else:
            high = middle - 1
    return low


def table_rows(all_sizes: Dict[bool, List[ModelSizes]], num_gpus: int) -> List[dict]:
    """One row per model, strategy and ``with_cp``: totals (GiB) and largest batches."""
    rows = []
    for models in zip(*all_sizes.values()):
        for with_cp, sizes in zip(all_sizes, models):
            for strategy in STRATEGIES:
                rows.append(dict(
                    model=sizes.name, strategy=strategy, with_cp=with_cp,
                    total_gib={batch: total_bytes(sizes, strategy, batch, num_gpus) / GIB
                               for batch in BATCH_SIZES},
                    largest_batch={gib: largest_batch(sizes, strategy, num_gpus, gib)
                                   for gib in CAPACITIES_GIB}))
    return rows


def markdown(rows: List[dict], all_sizes: Dict[bool, List[ModelSizes]],
             num_gpus: int) -> str:
    """The parts table and the per-GPU table in Markdown."""
    lines = ['| model | with_cp | online params | momentum params | queue | '
             'activations / sample | fixed activations | recomputed block / sample | '
             'loss bytes / logit |',
             '|---|---|---|---|---|---|---|---|---|']
    for with_cp, sizes_list in all_sizes.items():
        for sizes in sizes_list:
            lines.append(
                f'| {sizes.name} | {with_cp} | {sizes.online_params / 1e6:.1f} M | '
                f'{sizes.momentum_params / 1e6:.1f} M | {sizes.queue_bytes / 1e6:.0f} MB | '
                f'{sizes.activation_bytes_per_sample / 1e6:.1f} MB | '
                f'{sizes.activation_fixed_bytes / 1e6:.0f} MB | '
                f'{sizes.recompute_bytes_per_sample / 1e6:.1f} MB | '
                f'{sizes.loss_bytes_per_logit:.1f} |')
    batches = ' | '.join(f'B = {batch}' for batch in BATCH_SIZES)
    fits = ' | '.join(f'largest B, {gib} GiB' for gib in CAPACITIES_GIB)
    lines += ['', f'Per GPU (GiB), N = {num_gpus} GPUs:', '',
              f'| model | strategy | with_cp | {batches} | {fits} |',
              '|---|---|---|' + '---|' * (len(BATCH_SIZES) + len(CAPACITIES_GIB))]
    for row in rows:
        totals = ' | '.join(f'{gib:.1f}' for gib in row['total_gib'].values())
        largest = ' | '.join(str(batch) for batch in row['largest_batch'].values())
        lines.append(f"| {row['model']} | {row['strategy']} | {row['with_cp']} | "
                     f'{totals} | {largest} |')
    return '\n'.join(lines)


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Per-GPU memory of ViLReF pre-training')
    parser.add_argument('configs', nargs='+', help='pre-training configs (configs/vilref)')
    parser.add_argument('--num-gpus', type=int, default=8, help='GPUs N (the recipes: 8)')
    parser.add_argument('--fp32', action='store_true',
                        help='measure activations in fp32 (default: bf16 autocast, as --amp)')
    parser.add_argument('--threads', type=int, default=None, help='torch CPU threads')
    parser.add_argument('--out', help='write the sizes and rows as JSON')
    return parser.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    all_sizes: Dict[bool, List[ModelSizes]] = {False: [], True: []}
    for config in args.configs:
        for with_cp, sizes in measure_config(config, amp=not args.fp32).items():
            print(f'with_cp={with_cp}: {asdict(sizes)}', file=sys.stderr, flush=True)
            all_sizes[with_cp].append(sizes)
    rows = table_rows(all_sizes, args.num_gpus)
    print(markdown(rows, all_sizes, args.num_gpus))
    if args.out:
        record = dict(num_gpus=args.num_gpus, amp=not args.fp32,
                      headroom_fraction=HEADROOM_FRACTION, cuda_context_bytes=CUDA_CONTEXT_BYTES,
                      sizes={str(with_cp): [asdict(s) for s in sizes_list]
                             for with_cp, sizes_list in all_sizes.items()},
                      rows=rows)
        Path(args.out).write_text(json.dumps(record, indent=2))
    return 0


if __name__ == '__main__':
    sys.exit(main())
