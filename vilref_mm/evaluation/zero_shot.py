"""Zero-shot classification with ViLReF: Chinese prompts -> class prototypes -> scores.

A class prototype is the re-normalised mean of the text embeddings of every template x class
name. Images are scored against the prototypes by scaled cosine similarity
``s * v . p_c`` (``s = exp(logit_scale)``):

- ``multiclass``: softmax over the classes.
- ``multilabel`` with ``multilabel_score='normal'`` (default): each class against the
  "normal" prompt, ``p_c = softmax([s v.p_c, s v.p_normal])[0] = sigmoid(s v.(p_c - p_normal))``.
  When "normal" is itself one of the classes, its score is "normal" against the most similar
  other class, ``sigmoid(s v.p_normal - max_{c != normal} s v.p_c)``.
- ``multilabel`` with ``multilabel_score='sigmoid'``: ``p_c = sigmoid(s v.p_c + bias)``. With
  a trained scale (about 100) and cosines of 0.2-0.4 this saturates at 1.0 in float32 unless
  ``sigmoid_bias`` moves it back (e.g. ``-s`` times a typical cosine); ties then cost AUROC.

Scores are float64 (see :meth:`ZeroShotClassifier.scores`).
"""
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
import yaml
from mmpretrain.structures import DataSample

#: The default prompt file: templates and Chinese names of the default label set.
DEFAULT_PROMPTS = Path(__file__).with_name('prompts_zh.yaml')

MODES = ('multilabel', 'multiclass')
MULTILABEL_SCORES = ('normal', 'sigmoid')

ClassNames = Union[str, Path, Mapping[str, Union[str, Sequence[str]]], Sequence[str]]
Templates = Union[str, Path, Sequence[str], None]


class PromptError(ValueError):
    """Class names or templates that cannot be used; the message says where and what to do."""


def _names_list(names, where: str) -> List[str]:
    """One class's names as a non-empty list of non-empty strings."""
    if isinstance(names, str):
        names = [names]
    if (not isinstance(names, Sequence) or not names
            or not all(isinstance(name, str) and name.strip() for name in names)):
        raise PromptError(f'{where}: give a class name or a non-empty list of names '
                          f'(non-empty strings), not {names!r}')
    return [name.strip() for name in names]


def _templates_list(templates, where: str) -> List[str]:
    """Templates as a non-empty list of strings with one '{}' each."""
    if isinstance(templates, str) or not isinstance(templates, Sequence) or not templates:
        raise PromptError(f'{where}: give a non-empty list of templates, not {templates!r}')
    for template in templates:
        if not isinstance(template, str) or template.count('{}') != 1:
            raise PromptError(f"{where}: template {template!r} must be a string with exactly "
                              "one '{}' where the class name goes")
    return list(templates)


def load_prompt_file(path: Union[str, Path] = DEFAULT_PROMPTS) -> dict:
    """Read a prompt YAML file (the layout of ``prompts_zh.yaml``).

    Args:
        path: The file. Defaults to the shipped default prompts.

    Returns:
        dict: The sections present: ``templates`` (list of str) and ``class_names`` (label
        key -> list of names).

    Raises:
        PromptError: A missing or malformed file, naming the file and the field.
    """
    path = Path(path)
    try:
        content = yaml.safe_load(path.read_text(encoding='utf-8')) or {}
    except (OSError, yaml.YAMLError) as error:
        raise PromptError(f'{path}: cannot read the prompt file ({error})') from error
    if not isinstance(content, dict):
        raise PromptError(f"{path}: expected a mapping with 'templates' and/or 'class_names'")
    unknown = set(content) - {'templates', 'class_names'}
    if unknown:
        raise PromptError(f"{path}: unknown sections {sorted(unknown)}; a prompt file has "
                          "'templates' and/or 'class_names'")
    prompts = {}
    if 'templates' in content:
        prompts['templates'] = _templates_list(content['templates'], f'{path}: templates')
    if 'class_names' in content:
        class_names = content['class_names']
        if not isinstance(class_names, dict) or not class_names:
            raise PromptError(f'{path}: class_names must map label keys to names')
        prompts['class_names'] = {
            str(key): _names_list(names, f'{path}: class_names.{key}')
            for key, names in class_names.items()
        }
    return prompts


def _section(path: Union[str, Path], section: str) -> object:
    prompts = load_prompt_file(path)
    if section not in prompts:
        raise PromptError(f"{path}: the file has no '{section}' section")
    return prompts[section]


def resolve_class_names(class_names: ClassNames) -> Dict[str, List[str]]:
    """Class key -> Chinese names, from any accepted form.

    Args:
        class_names: A mapping ``key -> name | [names]``; a list of keys of the default
            prompt file (``prompts_zh.yaml``); the path of a prompt YAML file whose
            ``class_names`` are used; or None for every class of the default prompt file
            (the default label set, in its order).

    Returns:
        dict: Key -> list of names, in the given order (the order of the scores).
    """
    if class_names is None:
        return _section(DEFAULT_PROMPTS, 'class_names')
    if isinstance(class_names, (str, Path)):
        return _section(class_names, 'class_names')
    if isinstance(class_names, Mapping):
        if not class_names:
            raise PromptError('zero_shot.class_names is empty')
        return {str(key): _names_list(names, f'zero_shot.class_names.{key}')
                for key, names in class_names.items()}
    if isinstance(class_names, Sequence) and class_names:
        known = _section(DEFAULT_PROMPTS, 'class_names')
        unknown = [key for key in class_names if key not in known]
        if unknown:
            raise PromptError(
                f'zero_shot.class_names: {unknown} are not label keys of {DEFAULT_PROMPTS} '
                f'({", ".join(known)}); give a dict key -> Chinese names instead')
        return {key: known[key] for key in class_names}
    raise PromptError(f'zero_shot.class_names: expected a dict, a list of label keys or a '
                      f'prompt file, not {class_names!r}')


def resolve_templates(templates: Templates = None) -> List[str]:
    """Prompt templates: a list, the path of a prompt file, or None for the defaults."""
    if templates is None:
        return _section(DEFAULT_PROMPTS, 'templates')
    if isinstance(templates, (str, Path)):
        return _section(templates, 'templates')
    return _templates_list(templates, 'zero_shot.templates')


@torch.no_grad()
def build_prototypes(model: nn.Module,
                     class_names: Mapping[str, Sequence[str]],
                     templates: Sequence[str],
                     batch_size: int = 256) -> torch.Tensor:
    """Class prototypes: mean text embedding of templates x names, re-normalised.

    The model runs in eval mode (restored afterwards) and without gradient.

    Args:
        model: Has ``extract_text_feat(list of str) -> (N, D)`` L2-normalised embeddings.
        class_names: Key -> Chinese names.
        templates: Templates with one '{}' each.
        batch_size: Texts per call of ``extract_text_feat``.

    Returns:
        torch.Tensor: (C, D) unit-norm float32 prototypes, in the order of ``class_names``.
    """
    texts = [template.replace('{}', name)
             for names in class_names.values() for name in names for template in templates]
    counts = [len(names) * len(templates) for names in class_names.values()]
    was_training = model.training
    model.eval()
    try:
        feats = torch.cat([model.extract_text_feat(texts[start:start + batch_size])
                           for start in range(0, len(texts), batch_size)])
    finally:
        model.train(was_training)
    means = torch.stack([chunk.float().mean(0) for chunk in feats.split(counts)])
    return F.normalize(means, dim=-1)


def set_predictions(scores: torch.Tensor,
                    data_samples: Optional[List[DataSample]],
                    mode: str) -> List[DataSample]:
    """Write scores into data samples: ``pred_score``, and ``pred_label`` (argmax) for
    multi-class.

    Args:
        scores: (B, C) class scores.
        data_samples: The batch's samples (changed in place), or None to create them.
        mode: 'multilabel' or 'multiclass'.

    Returns:
        list[DataSample]: The samples.
    """
    if data_samples is None:
        data_samples = [DataSample() for _ in range(scores.size(0))]
    if len(data_samples) != scores.size(0):
        raise ValueError(f'{scores.size(0)} score rows for {len(data_samples)} data samples')
    num_classes = scores.size(1)
    for sample, score in zip(data_samples, scores):
        if 'gt_score' in sample and len(sample.gt_score) != num_classes:
            raise ValueError(
                f'the dataset gives {len(sample.gt_score)} classes but zero_shot.class_names '
                f'has {num_classes}: give one entry per dataset class, in the dataset order')
        sample.set_pred_score(score)
        if mode == 'multiclass':
            sample.set_pred_label(score.argmax())
    return data_samples


class ZeroShotClassifier:
    """Zero-shot classifier over a ViLReF-like model (see the module docstring for scores).

    Built from a config's ``model.zero_shot`` dict: ``ZeroShotClassifier(**zero_shot)``.

    Args:
        class_names: Key -> Chinese name(s) (a dict), label keys of the default prompt file
            (a list), a prompt YAML file, or None for every class of the default prompt file
            (the default label set). Their order is the order of the scores and must be the
            dataset's class order.
        templates: Prompt templates (a list with one '{}' each) or a prompt YAML file.
            Defaults to the templates of ``prompts_zh.yaml``.
        mode: 'multilabel' (independent per-class probabilities) or 'multiclass' (softmax).
        multilabel_score: 'normal' (each class against the normal prompt) or 'sigmoid'.
        normal: The "normal" reference of ``multilabel_score='normal'``: a key of
            ``class_names`` or of the default prompt file, or a list of Chinese names.
        sigmoid_bias: Added to the scaled similarity before the sigmoid
            (``multilabel_score='sigmoid'`` only).
        text_batch_size: Prompts per text-encoder call when building prototypes.
    """

    def __init__(self,
                 class_names: Optional[ClassNames] = None,
                 templates: Templates = None,
                 mode: str = 'multilabel',
                 multilabel_score: str = 'normal',
                 normal: Union[str, Sequence[str]] = 'normal',
                 sigmoid_bias: float = 0.,
                 text_batch_size: int = 256) -> None:
        if mode not in MODES:
            raise PromptError(f'zero_shot.mode: {mode!r} is not one of {MODES}')
        if multilabel_score not in MULTILABEL_SCORES:
            raise PromptError(f'zero_shot.multilabel_score: {multilabel_score!r} is not one '
                              f'of {MULTILABEL_SCORES}')
        self.mode = mode
        self.multilabel_score = multilabel_score
        self.normal = normal
        self.sigmoid_bias = float(sigmoid_bias)
        self.text_batch_size = text_batch_size
        self.set_prompts(class_names, templates)

    @property
    def uses_normal(self) -> bool:
        """Whether multi-label scores are taken against the normal prompt."""
        return self.mode == 'multilabel' and self.multilabel_score == 'normal'

    @property
    def classes(self) -> Tuple[str, ...]:
        """Class keys, in score order."""
        return tuple(self.class_names)

    def set_prompts(self, class_names: Optional[ClassNames] = None,
                    templates: Templates = None) -> None:
        """Set class names and/or templates (None keeps the current ones; on construction,
        None means the defaults) and drop the cached prototypes."""
        if class_names is not None or not hasattr(self, 'class_names'):
            self.class_names = resolve_class_names(class_names)
        if templates is not None or not hasattr(self, 'templates'):
            self.templates = resolve_templates(templates)
        self._prompt_names = dict(self.class_names)
        self.normal_index: Optional[int] = None
        if self.uses_normal:
            self._prompt_names, self.normal_index = self._with_normal(self.class_names)
        self.clear_cache()

    def _with_normal(self, class_names: Dict[str, List[str]]) -> Tuple[Dict, int]:
        """Prompt names with the normal reference (appended when it is not a class), and the
        reference's row."""
        keys = list(class_names)
        if isinstance(self.normal, str) and self.normal in class_names:
            if len(keys) < 2:
                raise PromptError('zero_shot: multilabel_score=normal needs a class besides '
                                  f'the normal reference {self.normal!r}')
            return class_names, keys.index(self.normal)
        if isinstance(self.normal, str):
            defaults = _section(DEFAULT_PROMPTS, 'class_names')
            if self.normal not in defaults:
                raise PromptError(
                    f'zero_shot.normal: {self.normal!r} is neither a class nor a label key of '
                    f'{DEFAULT_PROMPTS}; give its Chinese names as a list')
            names = defaults[self.normal]
        else:
            names = _names_list(self.normal, 'zero_shot.normal')
        return {**class_names, '__normal_reference__': names}, len(keys)

    def clear_cache(self) -> None:
        """Forget the cached prototypes (they are rebuilt on the next use)."""
        self._cache_key = None
        self._cache: Optional[torch.Tensor] = None

    @staticmethod
    def _weights_key(model: nn.Module) -> tuple:
        """Changes when the model's weights are replaced or updated in place."""
        return (id(model), ) + tuple((param.data_ptr(), param._version)
                                     for param in model.parameters())

    def prototypes(self, model: nn.Module) -> torch.Tensor:
        """The (C', D) prototypes of the classes, plus (last row) the normal reference when
        it is not one of the classes; built once, rebuilt when the prompts or the model's
        weights change."""
        key = self._weights_key(model)
        if self._cache is None or key != self._cache_key:
            self._cache = build_prototypes(model, self._prompt_names, self.templates,
                                           self.text_batch_size)
            self._cache_key = key
        return self._cache

    def scores(self, image_feats: torch.Tensor, prototypes: torch.Tensor,
               scale: Union[float, torch.Tensor]) -> torch.Tensor:
        """Class scores of L2-normalised image features.

        Args:
            image_feats: (B, D) image embeddings.
            prototypes: (C', D) from :meth:`prototypes`.
            scale: ``exp(logit_scale)``.

        Returns:
            torch.Tensor: (B, C) float64 probabilities (rows sum to 1 for multi-class).
            Similarities are computed in float32 even under mixed precision, probabilities in
            float64: with a scale of about 100, float32 probabilities of confident samples
            round to the same 1.0, and ties blunt the AUROC.
        """
        num_classes = len(self.class_names)
        with torch.autocast(image_feats.device.type, enabled=False):
            logits = scale * image_feats.float() @ prototypes.to(image_feats.device).float().t()
        return self._probabilities(logits.double(), num_classes)

    def _probabilities(self, logits: torch.Tensor, num_classes: int) -> torch.Tensor:
        """Scores of the (B, C') scaled similarities (see the module docstring)."""
        class_logits = logits[:, :num_classes]
        if self.mode == 'multiclass':
            return class_logits.softmax(dim=-1)
        if not self.uses_normal:
            return torch.sigmoid(class_logits + self.sigmoid_bias)
        normal = logits[:, self.normal_index:self.normal_index + 1]
        scores = torch.sigmoid(class_logits - normal)
        if self.normal_index < num_classes:
            others = class_logits.clone()
            others[:, self.normal_index] = float('-inf')
            scores[:, self.normal_index] = torch.sigmoid(
                normal[:, 0] - others.max(dim=-1).values)
        return scores

    @torch.no_grad()
    def predict(self, model: nn.Module, image_feats: torch.Tensor,
                data_samples: Optional[List[DataSample]] = None) -> List[DataSample]:
        """Score a batch and fill its data samples (what ``ViLReF.predict`` returns).

        Args:
            model: Has ``extract_text_feat`` and ``logit_scale``.
            image_feats: (B, D) L2-normalised image embeddings of the batch.
            data_samples: The batch's samples, or None.

        Returns:
            list[DataSample]: With ``pred_score`` (and ``pred_label`` for multi-class).
        """
        scores = self.scores(image_feats, self.prototypes(model), model.logit_scale.exp())
        return set_predictions(scores, data_samples, self.mode)

    def __repr__(self) -> str:
        return (f'{type(self).__name__}(classes={list(self.classes)}, '
                f'templates={len(self.templates)}, mode={self.mode!r}, '
                f'multilabel_score={self.multilabel_score!r})')
