"""Inference with a ViLReF model: zero-shot scores, image and text features, retrieval.

::

    from vilref_mm.apis import format_ranking, init_model, zero_shot
    model = init_model('configs/zero_shot/vilref_vit-b16_zero-shot_rfmid-224px.py',
                       'checkpoints/vilref_vitb16.pth')
    result = zero_shot(model, ['photo.jpg', 'photos/'], class_names=['glaucoma', 'drusen'])
    print(format_ranking(result))

Images are file paths, folders (their image files, sorted by name) or ``np.ndarray`` s
(H x W x 3 uint8 in BGR order, as ``mmcv.imread`` and ``cv2.imread`` give them). They go
through the image transforms of the config's test pipeline (loading, text and packing steps
left out), then the model's data preprocessor, as in ``tools/test.py``. ``tools/zero_shot.py``
and ``tools/extract_features.py`` are the command lines (docs/zero_shot.md).
"""
import contextlib
import copy
import json
import logging
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Sequence, Tuple, Union

import mmcv
import numpy as np
import torch
from mmcv.transforms import Compose
from mmengine.config import Config
from mmengine.logging import print_log
from mmengine.registry import DefaultScope
from mmengine.utils import ProgressBar
from mmpretrain.registry import MODELS, TRANSFORMS
from torch import nn

import vilref_mm.datasets  # noqa: F401  registers the transforms
import vilref_mm.models  # noqa: F401  registers the model
from vilref_mm.datasets.downstream import IMAGE_SUFFIXES
from vilref_mm.evaluation.zero_shot import (ClassNames, PromptError, Templates,
                                            ZeroShotClassifier, load_prompt_file,
                                            resolve_class_names)
from vilref_mm.utils.checkpoint import (load_state_dict_completely, read_checkpoint_state_dict,
                                        trusted_checkpoints)
from vilref_mm.utils.config import innermost_dataset_cfg
from vilref_mm.utils.fileio import atomic_open, write_text_atomic

ImageLike = Union[str, Path, np.ndarray]
Images = Union[ImageLike, Sequence[ImageLike]]

#: Test-pipeline steps that inference replaces: it loads the images itself, has no text, and
#: packs with ``PackInputs``.
NON_IMAGE_TRANSFORMS = ('LoadImageFromFile', 'LoadImageFromRecord', 'TokenizeReport',
                        'PackInputs', 'PackImageReportInputs')
#: Image features :func:`extract_image_features` gives.
FEATURES = ('embedding', 'encoder')
DIRECTIONS = ('text_to_image', 'image_to_text')


def init_model(config: Union[str, Path, Config],
               checkpoint: Optional[str] = None,
               device: str = 'cpu',
               cfg_options: Optional[dict] = None,
               trusted: bool = False) -> nn.Module:
    """Build a ViLReF model from a config and load its weights, ready for inference.

    Args:
        config: A ViLReF config (``configs/zero_shot/*.py``, ``configs/vilref/*.py``, or the
            ``*.py`` a training run saved in its work dir).
        checkpoint: A converted release (``tools/model_converters/vilref_to_mm.py``) or a
            checkpoint of your own training. None keeps the random initial weights.
        device: E.g. 'cpu' or 'cuda:0'.
        cfg_options: Overrides of config entries, as ``--cfg-options`` takes them.
        trusted: You vouch for the checkpoint's origin: unpickle it in full if it needs
            Python objects besides tensors. Converted releases and vilref_mm's own training
            checkpoints never need it (docs/security.md).

    Returns:
        nn.Module: The model in eval mode on ``device``; ``model.cfg`` is the config.
    """
    cfg = copy.deepcopy(config) if isinstance(config, Config) else Config.fromfile(config)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        model = MODELS.build(cfg.model)
    if not all(hasattr(model, name) for name in ('extract_image_feat', 'extract_text_feat')):
        raise TypeError(f'{cfg.filename}: model.type {cfg.model.get("type")!r} is not a '
                        'ViLReF-like model (extract_image_feat, extract_text_feat); use a '
                        'config of configs/zero_shot or configs/vilref')
    if checkpoint is None:
        model.init_weights()
        print_log('init_model: no checkpoint given, the model has random weights',
                  logger='current', level=logging.WARNING)
    else:
        load_weights(model, checkpoint, trusted)
    model.cfg = cfg
    return model.to(device).eval()


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
        list: Paths (str) and arrays, in the order the features and scores come.
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


def _has_folder(images: Images) -> bool:
    if isinstance(images, (str, Path, np.ndarray)):
        images = [images]
    return any(not isinstance(item, np.ndarray) and Path(item).is_dir() for item in images)


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


@contextlib.contextmanager
def eval_mode(model: nn.Module) -> Iterator[None]:
    """Run ``model`` in eval mode without gradients, restoring its mode afterwards."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        model.train(was_training)


def _image_batches(model: nn.Module, images: Sequence[ImageLike], batch_size: int,
                   progress: bool,
                   failed: Optional[List[Tuple[str, str]]] = None
                   ) -> Iterator[Tuple[List[str], torch.Tensor]]:
    """The names (see :func:`image_names`) and normalised (B, 3, H, W) batch on the model's
    device of each batch of images.

    An unreadable image file raises :class:`UnreadableImageError` or, when ``failed`` is a
    list, is left out of its batch and appended to ``failed`` as (name, reason).
    """
    cfg = getattr(model, 'cfg', None)
    img_size = (cfg.model.image_encoder.get('img_size', 224) if cfg is not None else 224)
    pipeline = build_image_pipeline(cfg, img_size)
    names = image_names(images)
    bar = ProgressBar(len(images), file=sys.stderr) if progress else None
    for start in range(0, len(images), batch_size):
        chunk = images[start:start + batch_size]
        read, packed = [], []
        for name, image in zip(names[start:start + batch_size], chunk):
            try:
                array = load_image(image)
            except UnreadableImageError as error:
                if failed is None:
                    raise
                failed.append((name, error.reason))
                continue
            read.append(name)
            packed.append(pipeline(dict(img=array, img_shape=array.shape[:2],
                                        ori_shape=array.shape[:2])))
        if packed:
            data = model.data_preprocessor(
                {'inputs': [sample['inputs'] for sample in packed],
                 'data_samples': [sample['data_samples'] for sample in packed]}, False)
            yield read, data['inputs']['images']
        if bar is not None:
            bar.update(len(chunk))
    if bar is not None:
        sys.stderr.write('\n')


def extract_image_features(model: nn.Module,
                           images: Images,
                           batch_size: int = 32,
                           feature: str = 'embedding',
                           progress: Optional[bool] = None,
                           failed: Optional[List[Tuple[str, str]]] = None) -> np.ndarray:
    """Image features, batched.

    Args:
        model: A ViLReF (see :func:`init_model`).
        images: Paths, folders and/or arrays (see :func:`collect_images` for the order).
        batch_size: Images per forward pass.
        feature: 'embedding' (the L2-normalised joint-space embedding, D-d, for zero-shot
            and retrieval) or 'encoder' (the image encoder's output before the projection:
            ViT ``ln_post(CLS)``, 768-d for ViT-B/16; the linear-probe feature).
        progress: Show a progress bar (on stderr). None: when a folder is among ``images``.
        failed: A list to collect unreadable image files in, as (name, reason) (names as
            :func:`image_names` gives them): they are left out of the features. None (the
            default): an unreadable file raises :class:`UnreadableImageError`.

    Returns:
        np.ndarray: (N, D) float32 features, one row per collected image that was read.

    Raises:
        UnreadableImageError: An image file cannot be read and ``failed`` is None.
        ValueError: No image could be read (``failed`` names them all).
    """
    if feature not in FEATURES:
        raise ValueError(f'feature={feature!r} is not one of {FEATURES}')
    if progress is None:
        progress = _has_folder(images)
    images = collect_images(images)
    feats = []
    with eval_mode(model):
        for _, batch in _image_batches(model, images, batch_size, progress, failed):
            if feature == 'embedding':
                feats.append(model.extract_image_feat(batch))
            else:
                out = model.image_encoder(batch)
                feats.append(out[-1] if isinstance(out, (tuple, list)) else out)
    if not feats:
        raise ValueError(f'none of the {len(images)} images could be read')
    return torch.cat(feats).float().cpu().numpy()


def extract_text_features(model: nn.Module, texts: Union[str, Sequence[str]],
                          batch_size: int = 256) -> np.ndarray:
    """L2-normalised text embeddings (N, D) float32, batched."""
    texts = [texts] if isinstance(texts, str) else list(texts)
    if not texts:
        raise ValueError('no texts given')
    with eval_mode(model):
        feats = [model.extract_text_feat(texts[start:start + batch_size])
                 for start in range(0, len(texts), batch_size)]
    return torch.cat(feats).float().cpu().numpy()


@dataclass
class ZeroShotResult:
    """Zero-shot scores of a set of images.

    Attributes:
        classes: Class keys, the columns of ``scores``.
        scores: (N, C) float64 probabilities (rows sum to 1 for 'multiclass').
        images: Name of each row (its path, or ``<array i>``).
        mode: 'multilabel' or 'multiclass'.
        failed: (name, reason) of each image file that could not be read and has no row
            (see ``skip_unreadable`` of :func:`zero_shot`).
    """

    classes: Tuple[str, ...]
    scores: np.ndarray
    images: List[str]
    mode: str
    failed: List[Tuple[str, str]] = field(default_factory=list)

    def ranking(self, index: int, topk: Optional[int] = None) -> List[Tuple[str, float]]:
        """(class, score) of image ``index``, highest score first; the ``topk`` first."""
        order = np.argsort(-self.scores[index], kind='stable')[:topk]
        return [(self.classes[c], float(self.scores[index, c])) for c in order]

    def to_dict(self) -> dict:
        """``mode``, ``classes``, per image its ``file`` and ``scores`` (class -> score), and
        per unreadable image (``failed``) its ``file`` and ``error``."""
        return dict(mode=self.mode, classes=list(self.classes), images=[
            dict(file=name, scores=dict(zip(self.classes, row.tolist())))
            for name, row in zip(self.images, self.scores)],
            failed=[dict(file=name, error=reason) for name, reason in self.failed])

    def save_json(self, path: Union[str, Path]) -> None:
        """Write :meth:`to_dict` as JSON (UTF-8, Chinese unescaped), atomically."""
        write_text_atomic(path, [json.dumps(self.to_dict(), ensure_ascii=False, indent=2) + '\n'])


def zero_shot_classifier(model: nn.Module,
                         class_names: Optional[ClassNames] = None,
                         templates: Templates = None,
                         texts: Optional[Sequence[str]] = None,
                         mode: Optional[str] = None) -> ZeroShotClassifier:
    """The classifier :func:`zero_shot` uses.

    Args:
        model: A ViLReF; its config's ``model.zero_shot`` (if any) gives what is not set.
        class_names: See :class:`~vilref_mm.evaluation.ZeroShotClassifier`: a dict key ->
            Chinese names, label keys of the default prompt file, or a prompt YAML file.
            None: the model's, else every class of the default prompt file.
        templates: Prompt templates or a prompt YAML file. None: the model's, else the
            default ones.
        texts: Free Chinese texts, each its own class, used as written (no template
            unless ``templates`` is given). Excludes ``class_names``.
        mode: 'multilabel' or 'multiclass'. None: the model's, else 'multiclass' for
            ``texts`` and 'multilabel' for class names.

    Returns:
        ZeroShotClassifier: The classifier.
    """
    if texts is not None:
        if class_names is not None:
            raise PromptError('give class_names or texts, not both')
        texts = [texts] if isinstance(texts, str) else list(texts)
        if not texts or len(set(texts)) != len(texts):
            raise PromptError(f'texts must be distinct non-empty strings, got {texts!r}')
        return ZeroShotClassifier({text: [text] for text in texts}, templates or ['{}'],
                                  mode=mode or 'multiclass')
    configured = getattr(model, 'zero_shot', None)
    if configured is None:
        return ZeroShotClassifier(class_names, templates, mode=mode or 'multilabel')
    if class_names is None and templates is None and mode in (None, configured.mode):
        return configured
    return ZeroShotClassifier(
        configured.class_names if class_names is None else class_names,
        configured.templates if templates is None else templates,
        mode=mode or configured.mode, multilabel_score=configured.multilabel_score,
        normal=configured.normal, sigmoid_bias=configured.sigmoid_bias)


def zero_shot(model: nn.Module,
              images: Images,
              class_names: Optional[ClassNames] = None,
              templates: Templates = None,
              texts: Optional[Sequence[str]] = None,
              mode: Optional[str] = None,
              batch_size: int = 32,
              progress: Optional[bool] = None,
              skip_unreadable: bool = False) -> ZeroShotResult:
    """Score images against class prompts or free Chinese texts.

    Args:
        model: A ViLReF (see :func:`init_model`).
        images: Paths, folders and/or arrays.
        class_names, templates, texts, mode: See :func:`zero_shot_classifier`.
        batch_size: Images per forward pass.
        progress: Show a progress bar (stderr). None: when a folder is among ``images``.
        skip_unreadable: Score the images that can be read and list the others in the
            result's ``failed`` instead of raising :class:`UnreadableImageError` at the
            first unreadable file.

    Returns:
        ZeroShotResult: Scores per image and class.
    """
    classifier = zero_shot_classifier(model, class_names, templates, texts, mode)
    if progress is None:
        progress = _has_folder(images)
    images = collect_images(images)
    names, scores, failed = [], [np.zeros((0, len(classifier.classes)))], []
    with eval_mode(model):
        prototypes = classifier.prototypes(model)
        scale = model.logit_scale.exp()
        for read, batch in _image_batches(model, images, batch_size, progress,
                                          failed if skip_unreadable else None):
            names += read
            scores.append(classifier.scores(model.extract_image_feat(batch), prototypes,
                                            scale).cpu().numpy())
    return ZeroShotResult(classes=classifier.classes, scores=np.concatenate(scores),
                          images=names, mode=classifier.mode, failed=failed)


def select_prompts(keys: Optional[Sequence[str]] = None,
                   prompt_file: Optional[str] = None
                   ) -> Tuple[Optional[Dict[str, List[str]]], Optional[List[str]]]:
    """Class names and templates from label keys and/or a prompt file (the CLI's options).

    Args:
        keys: Label keys to score, from the prompt file's ``class_names`` or, when it has
            none (or none is given), from the default prompt file. None: every class of the
            prompt file, or the model's classes.
        prompt_file: A prompt YAML file (``templates`` and/or ``class_names``).

    Returns:
        tuple: ``class_names`` (None: the model's) and ``templates`` (None: the model's).
    """
    prompts = load_prompt_file(prompt_file) if prompt_file is not None else {}
    available = prompts.get('class_names')
    if keys is None:
        class_names = available
    elif available is None:
        class_names = resolve_class_names(list(keys))
    else:
        unknown = [key for key in keys if key not in available]
        if unknown:
            raise PromptError(f'{prompt_file}: class_names has no {unknown}; its classes are '
                              f'{", ".join(available)}')
        class_names = {key: available[key] for key in keys}
    return class_names, prompts.get('templates')


def format_ranking(result: ZeroShotResult, topk: Optional[int] = 5) -> str:
    """A table per image of its classes, highest score first (the ``topk`` first)."""
    width = max(len('class'), *(len(name) for name in result.classes))
    what = ('probability of each finding (multi-label)' if result.mode == 'multilabel' else
            'probability over the classes (multi-class)')
    lines = []
    for index, name in enumerate(result.images):
        lines += ['', f'{name}  [{what}]', f'  rank  {"class":<{width}}  score']
        lines += [f'  {rank:>4}  {cls:<{width}}  {score:.4f}'
                  for rank, (cls, score) in enumerate(result.ranking(index, topk), 1)]
    return '\n'.join(lines[1:])


def retrieve(model: nn.Module,
             texts: Sequence[str],
             images: Images,
             direction: str = 'text_to_image',
             topk: int = 5,
             batch_size: int = 32,
             progress: Optional[bool] = None) -> List[List[Tuple[int, float]]]:
    """Image-text retrieval by cosine similarity of the embeddings.

    Args:
        model: A ViLReF.
        texts: Chinese texts (queries for 'text_to_image', the gallery otherwise).
        images: Paths, folders and/or arrays (the gallery for 'text_to_image').
        direction: 'text_to_image' or 'image_to_text'.
        topk: Gallery items per query.
        batch_size: Images per forward pass.
        progress: As in :func:`extract_image_features`.

    Returns:
        list: Per query, ``(gallery index, cosine similarity)`` of the ``topk`` most similar
        gallery items, best first. Image indices follow :func:`collect_images`.
    """
    if direction not in DIRECTIONS:
        raise ValueError(f'direction={direction!r} is not one of {DIRECTIONS}')
    text_feats = torch.from_numpy(extract_text_features(model, texts))
    image_feats = torch.from_numpy(
        extract_image_features(model, images, batch_size, progress=progress))
    queries, gallery = ((text_feats, image_feats) if direction == 'text_to_image' else
                        (image_feats, text_feats))
    values, indices = (queries @ gallery.t()).topk(min(topk, len(gallery)), dim=1)
    return [[(int(i), float(v)) for i, v in zip(row_indices, row_values)]
            for row_indices, row_values in zip(indices.tolist(), values.tolist())]


def save_features(path: Union[str, Path], features: np.ndarray,
                  names: Optional[Sequence[str]] = None) -> None:
    """Write features to ``path`` (.npy) and, with ``names``, one name a line to the same
    path with the suffix .txt; both atomically."""
    path = Path(path)
    if path.suffix != '.npy':
        raise ValueError(f'{path}: features are written as .npy; end the file name in .npy')
    with atomic_open(path) as file:
        np.save(file, features)
    if names is not None:
        write_text_atomic(path.with_suffix('.txt'), [f'{name}\n' for name in names])
