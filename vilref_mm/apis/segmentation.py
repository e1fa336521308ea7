"""Fine-tune and evaluate a ViLReF backbone under mmsegmentation decoders, in one call.

:func:`finetune_segmentation` trains a config of ``configs/segmentation`` with the plugin's
runner, tests it (``runner.test()``: the configs' ``PerClassIoUMetric`` gives per-class Dice and
IoU) and draws the prediction for one photograph with the config's ``SegLocalVisualizer``.
The demo uses it on the synthetic fundus set::

    from vilref_mm.apis.segmentation import finetune_segmentation
    result = finetune_segmentation(
        'configs/segmentation/upernet_vilref-vit-mini-p16_1xb4-300it_synthetic-vessels-192x192.py',
        data_root='data/synthetic_fundus/vessels', work_dir='work_dirs/seg_vessels',
        pretrained='work_dirs/demo/pretrain/weights.pth')
    result['Dice']['vessel'], result['checkpoint'], result['overlay']
"""
import copy
import os.path as osp
import time
from typing import Dict, Mapping, Optional, Tuple, Union

import mmcv
import torch
from mmengine.config import Config
from mmengine.model import is_model_wrapper
from mmseg.apis import inference_model
from torch import nn

from vilref_mm.engine import build_runner, disable_validation, scale_schedule
from vilref_mm.utils.checkpoint import read_checkpoint_state_dict, trusted_checkpoints
from vilref_mm.utils.config import innermost_dataset_cfg
from vilref_mm.utils.fileio import replace_durably, temporary_prefix

#: Prefixes under which checkpoints hold a backbone: a ViLReF model (``image_encoder.``), an
#: mmseg / mmpretrain model (``backbone.``); a backbone-only file has none.
BACKBONE_PREFIXES = ('image_encoder.', 'backbone.')


def read_backbone_state_dict(checkpoint: str, prefix: Optional[str] = 'auto',
                             trusted: bool = False) -> Tuple[Dict[str, torch.Tensor], str]:
    """The backbone weights of a checkpoint, keys without prefix, and that prefix.

    Args:
        checkpoint (str): A backbone-only file (``vilref_to_mm.py --backbone-only``), a
            converted or pre-trained ViLReF model, or an mmseg / mmpretrain model.
        prefix (str, optional): Prefix of the backbone's keys; 'auto' takes the first of
            :data:`BACKBONE_PREFIXES` that occurs, else none. Defaults to 'auto'.
        trusted (bool): You vouch for the file's origin: unpickle it in full if it needs
            Python objects besides tensors (docs/security.md). Defaults to False.

    Returns:
        tuple[dict, str]: The backbone's tensors and their prefix in the file ('' for none).
    """
    with trusted_checkpoints(*([checkpoint] if trusted else [])):
        state_dict = read_checkpoint_state_dict(checkpoint)
    if prefix == 'auto':
        prefix = next((p for p in BACKBONE_PREFIXES if any(k.startswith(p) for k in state_dict)),
                      '')
    prefix = prefix or ''
    weights = {k[len(prefix):]: v for k, v in state_dict.items() if k.startswith(prefix)}
    if not weights:
        raise ValueError(f'{checkpoint}: no key starts with the prefix {prefix!r}; pass the '
                         'prefix of the image encoder (e.g. "image_encoder.") or None')
    return weights, prefix


def check_backbone_weights(weights: Mapping[str, torch.Tensor], backbone: nn.Module,
                           source: str) -> None:
    """Raise if ``weights`` lack or misshape a parameter of ``backbone``.

    Position embeddings may differ in length (they are resized when loaded).
    """
    expected = backbone.state_dict()
    missing = sorted(set(expected) - set(weights))
    misshapen = [f'{k}: {tuple(weights[k].shape)} != {tuple(v.shape)}'
                 for k, v in expected.items()
                 if k in weights and k != 'pos_embed' and weights[k].shape != v.shape]
    if missing or misshapen:
        raise ValueError(
            f'{source} does not fit the config\'s backbone ({type(backbone).__name__}): '
            f'missing {missing[:10]}{" ..." if len(missing) > 10 else ""}, '
            f'misshapen {misshapen[:10]}; set the backbone (arch, patch_size) and the neck '
            'and head channels to those of the checkpoint with cfg_options')


def metrics_by_class(metrics: Mapping[str, float]) -> dict:
    """The metrics of :class:`~vilref_mm.evaluation.PerClassIoUMetric` as fractions, the
    per-class ones by metric: ``{'mDice': 0.86, 'Dice': {'vessel': 0.77, ...}, ...}``."""
    result = {}
    for key, value in metrics.items():
        metric, _, class_name = key.partition('.')
        if class_name:
            result.setdefault(metric, {})[class_name] = float(value) / 100
        else:
            result[key] = float(value) / 100
    return result


def finetune_segmentation(config: Union[str, Config],
                          data_root: str,
                          work_dir: str,
                          pretrained: Optional[str] = None,
                          prefix: Optional[str] = 'auto',
                          trust_pretrained: bool = False,
                          max_iters: Optional[int] = None,
                          cfg_options: Optional[dict] = None,
                          overlay_image: Optional[str] = None,
                          seed: int = 0,
                          quiet: bool = True) -> dict:
    """Train a segmentation config, test it per class and draw one prediction.

    Training runs through :func:`vilref_mm.engine.build_runner` (checkpoint loading under
    current torch, CPU distributed) without in-training validation; the trained model is
    then tested once with ``runner.test()``: the config's test split and ``test_evaluator``
    (:class:`~vilref_mm.evaluation.PerClassIoUMetric` in ``configs/segmentation``). The
    config's visualizer (mmseg's ``SegLocalVisualizer``) paints the prediction for one
    photograph in the dataset's palette.

    Args:
        config (str | Config): A config of ``configs/segmentation``.
        data_root (str): Dataset folder for the train, val and test dataloaders (e.g.
            ``OUT_DIR/vessels`` or ``OUT_DIR/odoc`` of the synthetic generator).
        work_dir (str): Logs, checkpoints and ``overlay.png``.
        pretrained (str, optional): Backbone weights: a ``--backbone-only`` converted file,
            a (converted or pre-trained) ViLReF checkpoint or an mmseg / mmpretrain model.
            They are checked against the config's backbone before training. Defaults to
            None: the config's own ``init_cfg``.
        prefix (str, optional): Key prefix of the backbone in ``pretrained`` ('auto':
            ``image_encoder.``, ``backbone.`` or none, whichever occurs). Defaults to 'auto'.
        trust_pretrained (bool): You vouch for ``pretrained``'s origin: unpickle it in full
            if it needs Python objects besides tensors (vilref_mm's own training checkpoints
            do not; docs/security.md). Defaults to False.
        max_iters (int, optional): Training iterations; the config's schedule (warm-up,
            decay, checkpoint interval) is scaled to them
            (:func:`vilref_mm.engine.scale_schedule`). Defaults to the config's.
        cfg_options (dict, optional): Further overrides, as ``--cfg-options`` takes them.
        overlay_image (str, optional): Photograph to predict and paint. Defaults to the first
            test image.
        seed (int): Random seed. Defaults to 0.
        quiet (bool): Leave the runner's build (environment, config, hooks) off the console;
            the log file in ``work_dir`` keeps it (``build_runner(quiet=True)``). Defaults
            to True.

    Returns:
        dict: The test metrics as fractions in [0, 1] (:func:`metrics_by_class`: ``aAcc``,
        ``mDice``, ``mIoU``, ``mAcc``, and class name -> fraction in ``Dice``, ``IoU`` and
        ``Acc``), ``checkpoint`` (the last checkpoint), ``overlay`` (PNG path),
        ``train_seconds`` and ``iters``.
    """
    cfg = copy.deepcopy(config) if isinstance(config, Config) else Config.fromfile(config)
    cfg.work_dir = work_dir
    cfg.randomness = dict(seed=seed)
    for split in ('train', 'val', 'test'):
        if cfg.get(f'{split}_dataloader'):
            innermost_dataset_cfg(cfg[f'{split}_dataloader']).data_root = data_root
    if max_iters is not None:
        scale_schedule(cfg, max_iters)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    backbone_weights = None
    if pretrained is not None:
        backbone_weights, prefix = read_backbone_state_dict(pretrained, prefix,
                                                            trust_pretrained)
        cfg.model.backbone.init_cfg = dict(type='Pretrained', checkpoint=pretrained,
                                           prefix=prefix or None)
    disable_validation(cfg)

    runner = build_runner(cfg, quiet=quiet)
    model = runner.model.module if is_model_wrapper(runner.model) else runner.model
    if backbone_weights is not None:
        check_backbone_weights(backbone_weights, model.backbone, pretrained)
    start = time.perf_counter()
    with trusted_checkpoints(*([pretrained] if trust_pretrained else [])):
        runner.train()
    train_seconds = time.perf_counter() - start
    result = metrics_by_class(runner.test())

    if overlay_image is None:
        overlay_image = runner.test_dataloader.dataset.get_data_info(0)['img_path']
    model.cfg = Config(dict(test_pipeline=copy.deepcopy(
        innermost_dataset_cfg(cfg.test_dataloader).pipeline)))
    overlay = osp.join(work_dir, 'overlay.png')
    partial = osp.join(work_dir, f'{temporary_prefix(overlay)}overlay.png')
    # the config's SegLocalVisualizer, with the test set's classes and palette; written under
    # a temporary name, then renamed, so no half-written overlay is ever left
    runner.visualizer.add_datasample(
        'overlay', mmcv.imread(overlay_image, channel_order='rgb'),
        inference_model(model, overlay_image), draw_gt=False, with_labels=False,
        out_file=partial)
    replace_durably(partial, overlay)

    last = osp.join(work_dir, 'last_checkpoint')
    checkpoint = None
    if osp.isfile(last):
        with open(last) as f:
            checkpoint = f.read().strip()
    return dict(result, checkpoint=checkpoint, overlay=overlay, train_seconds=train_seconds,
                iters=cfg.train_cfg.max_iters)
