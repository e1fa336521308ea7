"""Time ViLReF pre-training steps, side by side with Chinese-CLIP (docs/benchmark.md).

Builds the config's model and optimizer wrapper and times full training steps on generated
batches of the config's shapes: forward, WSCL against a full memory queue, backward,
optimizer step, momentum (EMA) update and enqueue, exactly as the runner's ``train_step`` and
the two hooks run them. Variants, interleaved step by step:

- ``vilref``: the config's model (WSCL, momentum towers, queue of the config's size);
- ``clip``: the same towers with ``queue_size=0`` and ``gamma=0`` (plain CLIP InfoNCE);
- ``cn_clip`` (``--reference``): Chinese-CLIP's own model (``cn_clip``) of the same
  architecture, holding the same weights (ours are converted from it with the project's
  converter), with Chinese-CLIP's plain CLIP loss and torch's AdamW with the config's
  hyper-parameters, as Chinese-CLIP trains.

Prints the median step time, pairs/s, peak memory and, for ``vilref``, a per-part breakdown
(separate steps with a synchronisation between parts); ratios against the reference,
including image inference. Example::

    python tools/analysis/benchmark_pretrain.py configs/vilref/pretrain_vitb.py \\
        --batch-size 8 --threads 2 --steps 5 --warmup 2 --reference --out bench.json
"""
import argparse
import copy
import json
import platform
import resource
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Callable, Dict, List, Optional

import torch
import torch.nn.functional as F
from mmengine.config import Config, DictAction
from mmengine.logging import MMLogger
from mmengine.optim import build_optim_wrapper
from mmengine.registry import DefaultScope
from mmpretrain.registry import MODELS

import vilref_mm  # noqa: F401  registers the modules
from vilref_mm.engine import enable_amp
from vilref_mm.engine.runner import PARAMETER_MESSAGES, drop_console_messages
from vilref_mm.models import convert_checkpoint
from vilref_mm.models.backbones.convert import HEAD_WIDTH
from vilref_mm.utils.checkpoint import read_checkpoint_state_dict
from vilref_mm.utils.fileio import write_text_atomic


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Time ViLReF pre-training steps')
    parser.add_argument('config', help='a pre-training config (configs/vilref)')
    parser.add_argument('--batch-size', type=int, default=8, help='pairs per step')
    parser.add_argument('--steps', type=int, default=10, help='measured steps per variant')
    parser.add_argument('--warmup', type=int, default=3, help='unmeasured steps first')
    parser.add_argument('--amp', action='store_true', help='bf16 autocast (as --amp trains)')
    parser.add_argument('--compile', action='store_true',
                        help='torch.compile the towers (the config\'s compile setting)')
    parser.add_argument('--device', choices=['cpu', 'cuda'],
                        default='cuda' if torch.cuda.is_available() else 'cpu')
    parser.add_argument('--threads', type=int, help='torch CPU threads (default: torch\'s)')
    parser.add_argument('--reference', action='store_true',
                        help='also time Chinese-CLIP (cn_clip) on the same batch and weights')
    parser.add_argument('--no-breakdown', action='store_true',
                        help='skip the per-part breakdown steps')
    parser.add_argument('--sync-debug', action='store_true',
                        help='CUDA: run one vilref step under torch.cuda.set_sync_debug_mode '
                        "('warn') and list the host-device synchronisations")
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--out', metavar='JSON', help='write the figures to this file')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config entries, e.g. model.queue_size=1024')
    return parser.parse_args(argv)


class Timer:
    """Wall time of calls, synchronising the device around each."""

    def __init__(self, device: torch.device):
        self.device = device

    def sync(self) -> None:
        if self.device.type == 'cuda':
            torch.cuda.synchronize(self.device)

    def __call__(self, fn: Callable, *args):
        self.sync()
        start = time.perf_counter()
        result = fn(*args)
        self.sync()
        return result, time.perf_counter() - start


def build_model(cfg: Config, device: torch.device, compile_towers: bool):
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        model = MODELS.build(copy.deepcopy(cfg.model))
    model.init_weights()
    model.to(device).train()
    if compile_towers:
        model.compile_towers()
    return model


def make_batch(cfg: Config, model, batch_size: int, num_classes: int,
               generator: torch.Generator) -> dict:
    """Pairs as the pre-training pipeline packs them: uint8 BGR images of the config's
    ``img_size``, full-length token ids, labels."""
    size = cfg.model.image_encoder.get('img_size', 224)
    height, width = (size, size) if isinstance(size, int) else size
    context = model.tokenizer.context_length
    vocab = model.text_encoder.bert.config.vocab_size
    text_ids = torch.randint(1000, vocab, (batch_size, context), generator=generator)
    text_ids[:, 0], text_ids[:, -1] = 101, 102  # [CLS] ... [SEP], a full context
    return {'inputs': {
        'images': torch.randint(0, 256, (batch_size, 3, height, width), dtype=torch.uint8,
                                generator=generator),
        'text_ids': text_ids,
        'labels': (torch.rand(batch_size, num_classes, generator=generator) < 0.1).float()},
        'data_samples': None}


def fill_queue(model, generator: torch.Generator) -> None:
    """Fill the memory queue with random unit features and labels (a queue in steady state)."""
    queue = model.memory_queue
    feats = [F.normalize(torch.randn(queue.size, queue.image_feats.size(1), generator=generator),
                         dim=-1).to(queue.image_feats.device) for _ in range(2)]
    labels = (torch.rand(queue.size, queue.labels.size(1), generator=generator) < 0.1)
    queue.enqueue(*feats, labels.to(queue.labels.device))


def vilref_step(model, optim_wrapper, batch: dict) -> None:
    """One training iteration as the runner runs it: ``train_step``, then what
    MomentumUpdateHook and MemoryQueueHook do after it."""
    model.train_step(batch, optim_wrapper)
    if model.memory_queue is not None:
        model.momentum_update(0.995)
        model.enqueue_momentum_batch()


def vilref_breakdown(model, optim_wrapper, batch: dict, timer: Timer) -> Dict[str, float]:
    """The parts of :func:`vilref_step`, each timed on its own."""
    parts = {}
    with optim_wrapper.optim_context(model):
        data, parts['data preprocessor'] = timer(model.data_preprocessor, batch, True)
        images, text_ids, labels = (data['inputs'][k] for k in ('images', 'text_ids', 'labels'))
        model.clamp_logit_scale()
        image_feats, parts['image tower'] = timer(model.extract_image_feat, images)
        text_feats, parts['text tower'] = timer(model.extract_text_feat, text_ids)
        queue = ()
        if model.memory_queue is not None:
            momentum, parts['momentum forward'] = timer(model.extract_momentum_feats, images,
                                                        text_ids)
            queue = model.memory_queue.filled()
        loss, parts['loss (WSCL + queue)'] = timer(model.loss_module, image_feats, text_feats,
                                                   labels, model.logit_scale.exp(), *queue)
    _, parts['backward'] = timer(optim_wrapper.backward, loss)

    def optimizer_step():
        optim_wrapper.step()
        optim_wrapper.zero_grad()

    _, parts['optimizer'] = timer(optimizer_step)
    if model.memory_queue is not None:
        def ema_and_enqueue():
            model.momentum_update(0.995)
            model.memory_queue.enqueue(*momentum, labels)

        _, parts['EMA + enqueue'] = timer(ema_and_enqueue)
    return parts


def build_reference(model, device: torch.device, compile_towers: bool):
    """Chinese-CLIP's model of ``model``'s architecture, its weights copied into ``model``
    through the project's converter (so both hold the same weights)."""
    from cn_clip.clip.model import CLIP

    encoder, bert = model.image_encoder, model.text_encoder.bert.config
    if hasattr(encoder, 'attnpool'):  # ModifiedResNet: cn_clip's heads are width * 32 / 64
        vision = dict(vision_layers=tuple(len(getattr(encoder, name))
                                          for name in encoder.stage_names),
                      vision_width=encoder.conv3.out_channels, vision_patch_size=None)
        size = encoder.attnpool.grid_size * 32
    elif hasattr(encoder, 'arch_settings'):  # ViT
        vision = dict(vision_layers=encoder.num_layers, vision_width=encoder.embed_dims,
                      vision_patch_size=encoder.patch_embed.projection.kernel_size[0],
                      vision_head_width=encoder.embed_dims // encoder.arch_settings['num_heads'])
        size = encoder.img_size[0]
    else:
        raise SystemExit(f'--reference: no Chinese-CLIP equivalent of {type(encoder).__name__}')
    widths = {'image': vision.get('vision_head_width', HEAD_WIDTH),
              'text': bert.hidden_size // bert.num_attention_heads}
    if getattr(model.text_encoder, 'pooling', 'cls') != 'cls':
        raise SystemExit("--reference: Chinese-CLIP pools the text at [CLS]; set "
                         "model.text_encoder.pooling='cls'")
    if any(width != HEAD_WIDTH for width in widths.values()):
        raise SystemExit(f'--reference: attention heads {widths} channels wide; the released '
                         f'architectures (and the converter) use {HEAD_WIDTH}')
    reference = CLIP(
        embed_dim=model.text_projection.size(1), image_resolution=size, **vision,
        vocab_size=bert.vocab_size, text_attention_probs_dropout_prob=0.1,
        text_hidden_act=bert.hidden_act, text_hidden_dropout_prob=0.1,
        text_hidden_size=bert.hidden_size, text_initializer_range=0.02,
        text_intermediate_size=bert.intermediate_size,
        text_max_position_embeddings=bert.max_position_embeddings,
        text_num_attention_heads=bert.num_attention_heads,
        text_num_hidden_layers=bert.num_hidden_layers,
        text_type_vocab_size=bert.type_vocab_size).float()
    with tempfile.TemporaryDirectory() as folder:
        release, converted = Path(folder, 'release.pt'), Path(folder, 'converted.pth')
        torch.save({'state_dict': reference.state_dict()}, release)
        convert_checkpoint(str(release), str(converted))
        missing, _ = model.load_state_dict(read_checkpoint_state_dict(str(converted)),
                                           strict=False)
    if [key for key in missing if not key.startswith(('momentum_', 'memory_queue.'))]:
        raise SystemExit(f'--reference: the converted Chinese-CLIP model lacks {missing[:5]}')
    if model.memory_queue is not None:
        model.reset_momentum()
    reference.to(device).train()
    if compile_towers:
        reference.visual.compile()
        reference.bert.compile()
    return reference


def reference_step(reference, optimizer, batch: dict, mean: torch.Tensor, std: torch.Tensor,
                   dtype: Optional[torch.dtype]) -> None:
    """One Chinese-CLIP training step: its forward (normalised features and the scale), its
    plain CLIP loss (``get_loss``'s arithmetic, written out because ``get_loss`` moves its
    targets with ``.cuda()``), backward, AdamW, the scale clamp."""
    device = mean.device
    images = (batch['inputs']['images'].to(device).flip(1).float() - mean) / std
    texts = batch['inputs']['text_ids'].to(device)
    with torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
        image_feats, text_feats, scale = reference(images, texts)
        logits = scale * image_feats @ text_feats.t()
        targets = torch.arange(len(logits), device=device)
        loss = (F.cross_entropy(logits, targets) + F.cross_entropy(logits.t(), targets)) / 2
    loss.backward()
    optimizer.step()
    optimizer.zero_grad()
    with torch.no_grad():
        reference.logit_scale.clamp_(0, 4.6052)


def report_syncs(step: Callable) -> List[str]:
    """Run ``step`` under ``torch.cuda.set_sync_debug_mode('warn')``; print and return the
    places that synchronised the host with the device."""
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode('warn')
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter('always')
            step()
            torch.cuda.synchronize()
    finally:
        torch.cuda.set_sync_debug_mode(0)
    places = sorted({f'{w.filename}:{w.lineno}: {str(w.message).splitlines()[0]}'
                     for w in caught if 'synchroniz' in str(w.message)})
    print(f'host-device synchronisations in one vilref step: {len(places)}')
    for place in places:
        print(f'  {place}')
    return places


def peak_memory_mb(device: torch.device) -> float:
    """CUDA: the allocator's peak since the last reset; CPU: the process's max RSS."""
    if device.type == 'cuda':
        return torch.cuda.max_memory_allocated(device) / 2**20
    scale = 1 if platform.system() == 'Darwin' else 1024  # bytes on macOS, KiB elsewhere
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale / 2**20


def main(argv=None) -> int:
    args = parse_args(argv)
    # No weight-init report, no optimizer constructor line per parameter.
    drop_console_messages(MMLogger.get_instance('benchmark_pretrain', log_level='WARNING'),
                          PARAMETER_MESSAGES)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    if args.amp:
        enable_amp(cfg)
    clip_cfg = copy.deepcopy(cfg)
    clip_cfg.model.queue_size = 0
    clip_cfg.model.loss = dict(type='WeightedSimilarityCouplingLoss', gamma=0.)
    generator = torch.Generator().manual_seed(args.seed)
    torch.manual_seed(args.seed)

    models = {'vilref': build_model(cfg, device, compile_towers=False),
              'clip': build_model(clip_cfg, device, compile_towers=False)}
    num_classes = (models['vilref'].memory_queue.labels.size(1)
                   if models['vilref'].memory_queue is not None else 25)
    batch = make_batch(cfg, models['vilref'], args.batch_size, num_classes, generator)
    reference = optimizer = None
    if args.reference:
        reference = build_reference(models['vilref'], device, args.compile)
        models['clip'].load_state_dict(models['vilref'].state_dict(), strict=False)
    if models['vilref'].memory_queue is not None:
        fill_queue(models['vilref'], generator)
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        wrappers = {name: build_optim_wrapper(model, copy.deepcopy(cfg.optim_wrapper))
                    for name, model in models.items()}
    if args.compile:
        for model in models.values():
            model.compile_towers()
    steps = {name: (lambda m=model, w=wrappers[name]: vilref_step(m, w, batch))
             for name, model in models.items()}
    if reference is not None:
        # Chinese-CLIP's optimizer: torch's AdamW with the config's hyper-parameters and
        # torch's default implementation (no fused / foreach choice of ours).
        optimizer_cfg = {key: value for key, value in cfg.optim_wrapper.optimizer.items()
                         if key not in ('type', 'fused', 'foreach')}
        optimizer = torch.optim.AdamW(reference.parameters(), **optimizer_cfg)
        preprocessor = models['vilref'].data_preprocessor
        mean = preprocessor.mean.to(device).view(1, 3, 1, 1)
        std = preprocessor.std.to(device).view(1, 3, 1, 1)
        dtype = torch.bfloat16 if args.amp else None
        steps['cn_clip'] = lambda: reference_step(reference, optimizer, batch, mean, std, dtype)

    timer = Timer(device)
    times: Dict[str, List[float]] = {name: [] for name in steps}
    memory: Dict[str, float] = {name: 0.0 for name in steps}
    for step in range(args.warmup + args.steps):
        seconds = {}
        for name, fn in steps.items():
            if device.type == 'cuda':
                torch.cuda.reset_peak_memory_stats(device)
            _, seconds[name] = timer(fn)
            memory[name] = max(memory[name], peak_memory_mb(device))
            if step >= args.warmup:
                times[name].append(seconds[name])
        print(f'step {step + 1}/{args.warmup + args.steps}: ' + ', '.join(
            f'{name} {value:.3f} s' for name, value in seconds.items()) +
            (' (warm-up)' if step < args.warmup else ''), flush=True)
    syncs = report_syncs(steps['vilref']) if args.sync_debug else None

    results = {name: dict(step_s=statistics.median(values),
                          pairs_per_s=args.batch_size / statistics.median(values),
                          peak_memory_mb=memory[name]) for name, values in times.items()}
    if not args.no_breakdown:
        model, wrapper = models['vilref'], wrappers['vilref']
        parts: Dict[str, List[float]] = {}
        for _ in range(args.steps):
            for part, seconds in vilref_breakdown(model, wrapper, batch, timer).items():
                parts.setdefault(part, []).append(seconds)
        results['vilref']['breakdown_s'] = {k: statistics.median(v) for k, v in parts.items()}

    inference = {}
    with torch.no_grad():
        model = models['vilref'].eval()
        images = model.data_preprocessor(batch, False)['inputs']['images']
        encoders = {'vilref': lambda: model.extract_image_feat(images)}
        if reference is not None:
            reference.eval()
            encoders['cn_clip'] = lambda: reference.encode_image(images)
        for _ in range(args.warmup):
            for fn in encoders.values():
                timer(fn)
        for name, fn in encoders.items():
            inference[name] = statistics.median(timer(fn)[1] for _ in range(args.steps))

    report = dict(config=args.config, device=str(device), batch_size=args.batch_size,
                  context_length=models['vilref'].tokenizer.context_length,
                  threads=torch.get_num_threads(), amp=args.amp, compile=args.compile,
                  steps=args.steps, warmup=args.warmup,
                  queue_size=getattr(models['vilref'].memory_queue, 'size', 0),
                  variants=results, image_inference_s=inference, torch=torch.__version__)
    if syncs is not None:
        report['host_device_syncs'] = syncs
    if reference is not None:
        ref = results['cn_clip']['step_s']
        report['speed_vs_cn_clip'] = {name: ref / results[name]['step_s']
                                      for name in ('vilref', 'clip')}
        report['image_inference_speed_vs_cn_clip'] = inference['cn_clip'] / inference['vilref']
    print(format_report(report))
    if args.out:
        write_text_atomic(args.out, [json.dumps(report, indent=2) + '\n'])
        print(f'wrote {args.out}')
    return 0


def format_report(report: dict) -> str:
    """The figures as a table, the breakdown and the ratios."""
    lines = [f'{report["config"]}: batch {report["batch_size"]}, context '
             f'{report["context_length"]}, queue {report["queue_size"]}, {report["device"]} '
             f'({report["threads"]} threads), amp {report["amp"]}, compile {report["compile"]}; '
             f'medians of {report["steps"]} steps',
             f'{"variant":<10}{"step s":>10}{"pairs/s":>10}{"peak MB":>10}'
             f'{"speed vs cn_clip":>18}']
    speeds = report.get('speed_vs_cn_clip', {})
    for name, values in report['variants'].items():
        speed = f'{speeds[name]:.2f}x' if name in speeds else ''
        lines.append(f'{name:<10}{values["step_s"]:>10.3f}{values["pairs_per_s"]:>10.1f}'
                     f'{values["peak_memory_mb"]:>10.0f}{speed:>18}')
    breakdown = report['variants']['vilref'].get('breakdown_s')
    if breakdown:
        total = sum(breakdown.values())
        lines.append('vilref step by part (synchronised between parts):')
        lines += [f'  {part:<24}{seconds:>9.4f} s {100 * seconds / total:>6.1f} %'
                  for part, seconds in breakdown.items()]
    lines.append('image inference (no grad): ' + ', '.join(
        f'{name} {seconds:.4f} s' for name, seconds in report['image_inference_s'].items()))
    if 'image_inference_speed_vs_cn_clip' in report:
        lines.append(f'  speed vs cn_clip {report["image_inference_speed_vs_cn_clip"]:.2f}x')
    return '\n'.join(lines)


if __name__ == '__main__':
    sys.exit(main())
