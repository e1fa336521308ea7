"""What ViLReF's inferencers add to mmpretrain's: checkpoints read under vilref_mm's trust
rule with every weight required, and image inputs (folders, BGR arrays, unreadable files).

Images are file paths, folders (their image files, sorted by name) or ``np.ndarray`` s
(H x W x 3 uint8 in BGR order, as ``mmcv.imread`` and ``cv2.imread`` give them). They go
through the image transforms of the config's test pipeline (loading, text and packing steps
left out), then the model's data preprocessor, as in ``tools/test.py``.
"""
import contextlib
import copy
import logging
import sys
from pathlib import Path
from typing import Iterator, List, Optional, Sequence, Tuple, Union

import mmcv
import mmpretrain.utils.progress as mmpretrain_progress
import numpy as np
from mmcv.transforms import Compose
from mmengine.config import Config
from mmengine.dataset import pseudo_collate
from mmengine.logging import print_log
from mmengine.model import BaseModel
from mmengine.registry import DefaultScope
from mmpretrain.apis import ModelHub, get_model
from mmpretrain.registry import TRANSFORMS
from torch import nn

import vilref_mm.datasets  # noqa: F401  registers the transforms
import vilref_mm.models  # noqa: F401  registers the model
from vilref_mm.datasets.downstream import IMAGE_SUFFIXES
from vilref_mm.utils.checkpoint import (load_state_dict_completely, read_checkpoint_state_dict,
                                        trusted_checkpoints)
from vilref_mm.utils.config import innermost_dataset_cfg

ImageLike = Union[str, Path, np.ndarray]
Images = Union[ImageLike, Sequence[ImageLike]]
#: (image name, reason) of each image file that could not be read.
Failed = List[Tuple[str, str]]

#: Test-pipeline steps that inference replaces: it loads the images itself, has no text, and
#: packs with ``PackInputs``.
NON_IMAGE_TRANSFORMS = ('LoadImageFromFile', 'LoadImageFromRecord', 'TokenizeReport',
                        'PackInputs', 'PackImageReportInputs')


def check_vilref(model: nn.Module, where: str) -> None:
    """Raise TypeError unless ``model`` has ViLReF's ``extract_image_feat`` and
    ``extract_text_feat``; ``where`` names the config or the caller."""
    if not all(hasattr(model, name) for name in ('extract_image_feat', 'extract_text_feat')):
        raise TypeError(f'{where}: {type(model).__name__} is not a ViLReF-like model '
                        '(extract_image_feat, extract_text_feat); use a config of '
                        'configs/zero_shot or configs/vilref')


def init_model(config: Union[str, Path, Config],
               checkpoint: Optional[str] = None,
               device: Optional[str] = None,
               cfg_options: Optional[dict] = None,
               trusted: bool = False) -> BaseModel:
    """:func:`mmpretrain.apis.get_model` with vilref_mm's checkpoint rule.

    The checkpoint is read tensors-only (or in full when ``trusted``) and must hold every
    weight of the model (:func:`load_weights`); mmpretrain's ``get_model(config,
    pretrained=...)`` reads with MMEngine's loader and only warns about missing weights.

    Args:
        config: A ViLReF config (``configs/zero_shot/*.py``, ``configs/vilref/*.py``, or the
            ``*.py`` a training run saved in its work dir), or a model name of mmpretrain's
            ``ModelHub`` (the config's name, docs/model_zoo.md).
        checkpoint: A converted release (``tools/model_converters/vilref_to_mm.py``) or a
            checkpoint of your own training. None: the config's initial weights
            (``init_weights``).
        device: E.g. 'cpu' or 'cuda:0'. None leaves the model on the CPU.
        cfg_options: Overrides of config entries, as ``--cfg-options`` takes them.
        trusted: You vouch for the checkpoint's origin: unpickle it in full if it needs
            Python objects besides tensors. Converted releases and vilref_mm's own training
            checkpoints never need it (docs/security.md).

    Returns:
        BaseModel: The model in eval mode, with ``_config`` and ``_dataset_meta`` set as
        ``get_model`` sets them.
    """
    if isinstance(config, Config):
        cfg = copy.deepcopy(config)
    elif Path(config).suffix == '.py':
        cfg = Config.fromfile(config)
    else:
        cfg = ModelHub.get(str(config)).config
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    model = get_model(cfg, device=device)
    check_vilref(model, cfg.filename or str(config))
    if checkpoint is None:
        model.init_weights()
        print_log('init_model: no checkpoint given, the model has random weights',
                  logger='current', level=logging.WARNING)
    else:
        load_weights(model, checkpoint, trusted)
    return model.eval()


def load_weights(model: nn.Module, checkpoint: str, trusted: bool = False) -> None:
    """Load a checkpoint's ``state_dict`` into ``model``.

    Every weight of the model must come from the checkpoint (a ViLReF with a memory queue
    rebuilds its momentum towers from the loaded weights); keys the model does not have
    (e.g. the momentum towers of a pre-training checkpoint) are ignored with a warning.

    Args:
        model: The model.
        checkpoint: The file, read under the trust rule of :mod:`vilref_mm.utils.checkpoint`.
        trusted: The user vouches for the file: unpickle it in full if it needs Python
            objects besides tensors (see :func:`init_model`).

    Raises:
        CheckpointError: The file is unreadable, untrusted, or leaves weights unset.
    """
    with trusted_checkpoints(*([checkpoint] if trusted else [])):
        state_dict = read_checkpoint_state_dict(checkpoint)
    unexpected = load_state_dict_completely(model, state_dict, checkpoint)
    if unexpected:
        print_log(f'{checkpoint}: ignored {len(unexpected)} keys the model does not have '
                  f'(e.g. {unexpected[:3]})', logger='current', level=logging.WARNING)


def build_image_pipeline(cfg: Optional[Config],
                         img_size: Union[int, Sequence[int]] = 224) -> Compose:
    """The image transforms of a config's test pipeline, followed by ``PackInputs``.

    Args:
        cfg: The model's config; its ``test_dataloader`` (else ``val_dataloader``) pipeline
            gives the transforms, without the steps of :data:`NON_IMAGE_TRANSFORMS`.
        img_size: Without a pipeline in ``cfg``, images are resized to this size (an int
            for a square, or (H, W)) with PIL bicubic, the release's test transform.

    Returns:
        Compose: Maps ``dict(img=BGR uint8 array, ...)`` to ``inputs`` and
        ``data_samples``.
    """
    transforms = None
    for name in ('test_dataloader', 'val_dataloader'):
        if cfg is not None and cfg.get(name):
            transforms = innermost_dataset_cfg(cfg[name]).get('pipeline')
            break
    if not transforms:
        height, width = (img_size, img_size) if isinstance(img_size, int) else img_size
        transforms = [dict(type='Resize', scale=(width, height), interpolation='bicubic',
                           backend='pillow')]
    transforms = [copy.deepcopy(t) for t in transforms
                  if str(t['type']).split('.')[-1] not in NON_IMAGE_TRANSFORMS]
    transforms.append(dict(type='PackInputs'))
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        return Compose([TRANSFORMS.build(t) for t in transforms])


def collect_images(images: Images) -> List[ImageLike]:
    """Images and the image files of folders (``IMAGE_SUFFIXES``, sorted, not recursive).

    Args:
        images: A path, a folder, an array, or a sequence of them.

    Returns:
        list: Paths (str) and arrays, in the order the results come.
    """
    if isinstance(images, (str, Path, np.ndarray)):
        images = [images]
    collected = []
    for item in images:
        if isinstance(item, np.ndarray):
            collected.append(item)
            continue
        path = Path(item)
        if path.is_dir():
            files = sorted(str(file) for file in path.iterdir()
                           if file.is_file() and file.suffix.lower() in IMAGE_SUFFIXES)
            if not files:
                raise FileNotFoundError(f'{path}: the folder holds no image file '
                                        f'({", ".join(IMAGE_SUFFIXES)})')
            collected += files
        elif path.is_file():
            collected.append(str(path))
        else:
            raise FileNotFoundError(f'{path}: no such image file or folder')
    if not collected:
        raise ValueError('no images given')
    return collected


def image_names(images: Sequence[ImageLike]) -> List[str]:
    """A name for each collected image: its path, or ``<array i>``."""
    return [f'<array {index}>' if isinstance(image, np.ndarray) else str(image)
            for index, image in enumerate(images)]


class UnreadableImageError(ValueError):
    """An image file that cannot be read or decoded.

    Args:
        image: The file.
        reason: Why it cannot be used.
    """

    def __init__(self, image: str, reason: str):
        self.image, self.reason = image, reason
        super().__init__(f'{image}: {reason}')


def load_image(image: ImageLike) -> np.ndarray:
    """An image as an H x W x 3 uint8 BGR array.

    Raises:
        UnreadableImageError: A file cannot be read or is not a readable image.
        ValueError: An array has the wrong type or shape.
    """
    if isinstance(image, np.ndarray):
        if image.dtype != np.uint8 or image.ndim not in (2, 3) or (
                image.ndim == 3 and image.shape[2] != 3):
            raise ValueError(f'image arrays must be H x W x 3 (BGR) or H x W uint8, got '
                             f'{image.dtype} of shape {image.shape}')
        return mmcv.gray2bgr(image) if image.ndim == 2 else image
    try:
        array = mmcv.imread(str(image), flag='color')
    except OSError as error:
        raise UnreadableImageError(str(image), f'cannot be read ({error.strerror or error})'
                                   ) from error
    if array is None:
        raise UnreadableImageError(str(image), 'not a readable image (it cannot be decoded)')
    return array


def show_progress(progress: Optional[bool] = None) -> bool:
    """Whether the tools draw mmpretrain's progress bar (on stdout): ``progress``, or (None)
    whether stdout is a terminal, since the bar garbles piped output."""
    return sys.stdout.isatty() if progress is None else progress


@contextlib.contextmanager
def progress_bar(enabled: bool) -> Iterator[None]:
    """Show or hide the progress bar of mmpretrain's inferencers (``mmpretrain.utils.track``,
    drawn on stdout) inside this block."""
    disabled = mmpretrain_progress.disable_progress_bar
    mmpretrain_progress.disable_progress_bar = not enabled
    try:
        yield
    finally:
        mmpretrain_progress.disable_progress_bar = disabled


class ViLReFInferencerMixin:
    """Model loading and image inputs of ViLReF's inferencers, placed before an mmpretrain
    inferencer (``class X(ViLReFInferencerMixin, BaseInferencer)``).

    Args:
        model: A config (path, :class:`Config` or ``ModelHub`` name), built with
            :func:`init_model`, or a ViLReF from :func:`mmpretrain.apis.get_model` /
            :func:`init_model`.
        pretrained: A checkpoint to load (see :func:`load_weights`). None: a config's
            initial weights, or a model's weights as they are.
        device: E.g. 'cpu' or 'cuda:0'. None: where the model is (the CPU for a config).
        trusted: Unpickle ``pretrained`` in full if it needs Python objects besides tensors
            (docs/security.md).
        cfg_options: Overrides of config entries (only with a config).
    """

    def __init__(self,
                 model: Union[str, Path, Config, BaseModel],
                 pretrained: Optional[str] = None,
                 device: Optional[str] = None,
                 trusted: bool = False,
                 cfg_options: Optional[dict] = None) -> None:
        if isinstance(model, BaseModel):
            if cfg_options:
                raise ValueError(f'{type(self).__name__}: cfg_options apply to a config, '
                                 'not to a built model')
            check_vilref(model, type(self).__name__)
            if not hasattr(model, '_config'):
                raise TypeError(f'{type(self).__name__}: the model has no _config (its test '
                                'pipeline); build it with mmpretrain.apis.get_model or '
                                'vilref_mm.apis.init_model')
            if pretrained is not None:
                load_weights(model, pretrained, trusted)
        else:
            model = init_model(model, pretrained, cfg_options=cfg_options, trusted=trusted)
        super().__init__(model, pretrained=False, device=device)

    def _init_pipeline(self, cfg: Config) -> Compose:
        return build_image_pipeline(cfg, cfg.model.image_encoder.get('img_size', 224))

    def _inputs_to_list(self, inputs: Images) -> List[ImageLike]:
        return collect_images(inputs)

    def preprocess(self, inputs: List[ImageLike], batch_size: int = 1,
                   failed: Optional[Failed] = None) -> Iterator[dict]:
        """Batches of packed images; each data sample has the image's ``sample_idx`` (its
        index in ``inputs``) and, for a file, ``img_path``.

        Args:
            inputs: From :meth:`_inputs_to_list`.
            batch_size: Images per batch.
            failed: None: an unreadable image file raises :class:`UnreadableImageError`. A
                list: unreadable files are left out and appended to it as (name, reason),
                names as :func:`image_names` gives them.
        """
        yield from map(pseudo_collate,
                       self._get_chunk_data(self._packed_images(inputs, failed), batch_size))

    def _packed_images(self, inputs: List[ImageLike],
                       failed: Optional[Failed]) -> Iterator[dict]:
        for index, (name, image) in enumerate(zip(image_names(inputs), inputs)):
            try:
                array = load_image(image)
            except UnreadableImageError as error:
                if failed is None:
                    raise
                failed.append((name, error.reason))
                continue
            sample = dict(img=array, img_shape=array.shape[:2], ori_shape=array.shape[:2],
                          sample_idx=index)
            if not isinstance(image, np.ndarray):
                sample['img_path'] = name
            yield self.pipeline(sample)
