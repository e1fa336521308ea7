"""What ViLReF adds to inference besides mmpretrain's inferencers: the zero-shot classifier
of a model's prompts or of free texts, and image-text retrieval.

::

    from mmpretrain.apis import get_model
    from vilref_mm.apis import retrieve
    model = get_model('configs/zero_shot/vilref_vit-b16_zero-shot_rfmid-224px.py',
                      pretrained='checkpoints/vilref_vitb16.pth')
    hits = retrieve(model, ['视盘水肿'], 'photos/', topk=5)

:class:`~vilref_mm.apis.ZeroShotInferencer` and
:class:`~vilref_mm.apis.ViLReFFeatureExtractor` score images and extract features;
``tools/zero_shot.py`` and ``tools/extract_features.py`` are the command lines
(docs/zero_shot.md).
"""
from typing import List, Optional, Sequence, Tuple

import torch
from mmengine.model import BaseModel
from torch import nn

from vilref_mm.evaluation.zero_shot import (ClassNames, PromptError, Templates,
                                            ZeroShotClassifier)
from .base import Images
from .feature_extractor import ViLReFFeatureExtractor

DIRECTIONS = ('text_to_image', 'image_to_text')


def zero_shot_classifier(model: nn.Module,
                         class_names: Optional[ClassNames] = None,
                         templates: Templates = None,
                         texts: Optional[Sequence[str]] = None,
                         mode: Optional[str] = None) -> ZeroShotClassifier:
    """The classifier of :class:`~vilref_mm.apis.ZeroShotInferencer`.

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
        ZeroShotClassifier: The classifier (the model's own ``zero_shot`` when nothing
        differs from it).
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


def retrieve(model: BaseModel,
             texts: Sequence[str],
             images: Images,
             direction: str = 'text_to_image',
             topk: int = 5,
             batch_size: int = 32) -> List[List[Tuple[int, float]]]:
    """Image-text retrieval by cosine similarity of the embeddings.

    Args:
        model: A ViLReF from :func:`mmpretrain.apis.get_model` or
            :func:`~vilref_mm.apis.init_model`.
        texts: Chinese texts (queries for 'text_to_image', the gallery otherwise).
        images: Paths, folders and/or BGR arrays (the gallery for 'text_to_image').
        direction: 'text_to_image' or 'image_to_text'.
        topk: Gallery items per query.
        batch_size: Images per forward pass.

    Returns:
        list: Per query, ``(gallery index, cosine similarity)`` of the ``topk`` most similar
        gallery items, best first. Image indices follow
        :func:`~vilref_mm.apis.collect_images`.
    """
    if direction not in DIRECTIONS:
        raise ValueError(f'direction={direction!r} is not one of {DIRECTIONS}')
    extractor = ViLReFFeatureExtractor(model)
    text_feats = torch.stack(extractor.extract_text(texts))
    image_feats = torch.stack(extractor(images, batch_size))
    queries, gallery = ((text_feats, image_feats) if direction == 'text_to_image' else
                        (image_feats, text_feats))
    values, indices = (queries @ gallery.t()).topk(min(topk, len(gallery)), dim=1)
    return [[(int(i), float(v)) for i, v in zip(row_indices, row_values)]
            for row_indices, row_values in zip(indices.tolist(), values.tolist())]
