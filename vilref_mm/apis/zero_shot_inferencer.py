"""Zero-shot diagnosis of fundus photographs with Chinese prompts, as an mmpretrain inferencer."""
import logging
from pathlib import Path
from typing import List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from matplotlib import font_manager
from mmengine.config import Config
from mmengine.logging import print_log
from mmengine.model import BaseModel
from mmengine.registry import INFERENCERS
from mmpretrain.apis import BaseInferencer
from mmpretrain.structures import DataSample

from vilref_mm.evaluation.zero_shot import ClassNames, Templates
from .base import ImageLike, ViLReFInferencerMixin, load_image
from .inference import zero_shot_classifier

#: Installed fonts with Chinese glyphs, tried in this order, for Chinese class names in
#: ``show_dir`` images (matplotlib's default fonts have none).
CJK_FONTS = ('Noto Sans CJK SC', 'Noto Sans SC', 'Source Han Sans SC', 'WenQuanYi Zen Hei',
             'WenQuanYi Micro Hei', 'SimHei', 'Microsoft YaHei', 'PingFang SC',
             'AR PL UMing CN')


def installed_cjk_font() -> Optional[str]:
    """The first font of :data:`CJK_FONTS` that matplotlib knows, or None."""
    installed = {font.name for font in font_manager.fontManager.ttflist}
    return next((name for name in CJK_FONTS if name in installed), None)


@INFERENCERS.register_module()
class ZeroShotInferencer(ViLReFInferencerMixin, BaseInferencer):
    """Zero-shot classification of fundus photographs against Chinese prompts.

    Each class's prototype is the mean text embedding of its Chinese names in the prompt
    templates (:class:`~vilref_mm.evaluation.ZeroShotClassifier`); an image is scored by the
    scaled cosine similarity of its embedding to the prototypes: in 'multilabel' mode each
    finding against "normal" (independent probabilities), in 'multiclass' mode a softmax over
    the classes. These are the scores of ``ViLReF.predict`` and of ``tools/test.py``.

    Args:
        model, pretrained, device, trusted, cfg_options: The model, see
            :class:`~vilref_mm.apis.base.ViLReFInferencerMixin`.
        class_names: Label keys of ``prompts_zh.yaml`` (a list), key -> Chinese names (a
            dict) or a prompt YAML file. None: the config's ``model.zero_shot`` classes, else
            every class of ``prompts_zh.yaml``.
        templates: Prompt templates (one '{}' each) or a prompt YAML file. None: the
            config's, else the default ones.
        texts: Free Chinese texts, each its own class, used as written (no template unless
            ``templates`` is given). Excludes ``class_names``.
        mode: 'multilabel' or 'multiclass'. None: the config's, else 'multiclass' for
            ``texts`` and 'multilabel' for class names.

    Calling it (``inferencer(images, batch_size=1, ...)``) scores images: a path, a folder
    (its image files, sorted by name), a BGR uint8 array, or a list of them. Options:

    - ``failed``: a list to collect unreadable image files in as (name, reason); they get no
      result. None (default): an unreadable file raises ``UnreadableImageError``.
    - ``show_dir``: write each image with its ``topk`` (default 5) classes and scores drawn
      on it to ``show_dir/<file stem>.png``; ``show`` displays it instead. ``resize``,
      ``rescale_factor``, ``draw_score`` and ``wait_time`` as in mmpretrain's
      ``ImageClassificationInferencer``.
    - ``return_datasamples``: return the :class:`DataSample` s.

    Returns a dict per image that was read: ``pred_scores`` (C,) float64 in the order of
    :attr:`classes`, ``pred_label`` and ``pred_class`` (the best class), ``pred_score`` (its
    score) and, for a file, ``img_path``.

    Example:
        >>> from vilref_mm.apis import ZeroShotInferencer
        >>> inferencer = ZeroShotInferencer(
        ...     'configs/zero_shot/vilref_vit-b16_zero-shot_refuge-glaucoma-224px.py',
        ...     pretrained='checkpoints/vilref_vitb16.pth')
        >>> inferencer('photo.jpg')[0]['pred_class']
        'glaucoma'
    """

    preprocess_kwargs = {'failed'}
    visualize_kwargs = {'show', 'show_dir', 'topk', 'resize', 'rescale_factor', 'draw_score',
                        'wait_time'}

    def __init__(self,
                 model: Union[str, Path, Config, BaseModel],
                 pretrained: Optional[str] = None,
                 device: Optional[str] = None,
                 class_names: Optional[ClassNames] = None,
                 templates: Templates = None,
                 texts: Optional[Sequence[str]] = None,
                 mode: Optional[str] = None,
                 trusted: bool = False,
                 cfg_options: Optional[dict] = None) -> None:
        super().__init__(model, pretrained, device, trusted, cfg_options)
        self.classifier = zero_shot_classifier(self.model, class_names, templates, texts, mode)

    @property
    def classes(self) -> Tuple[str, ...]:
        """Class keys (or the free texts), the order of ``pred_scores``."""
        return self.classifier.classes

    @property
    def mode(self) -> str:
        """'multilabel' or 'multiclass'."""
        return self.classifier.mode

    @torch.no_grad()
    def forward(self, data: dict) -> List[DataSample]:
        data = self.model.data_preprocessor(data, False)
        image_feats = self.model.extract_image_feat(data['inputs']['images'])
        return self.classifier.predict(self.model, image_feats, data['data_samples'])

    def visualize(self,
                  ori_inputs: List[ImageLike],
                  preds: List[DataSample],
                  show: bool = False,
                  show_dir: Optional[str] = None,
                  topk: Optional[int] = 5,
                  resize: Optional[int] = None,
                  rescale_factor: Optional[float] = None,
                  draw_score: bool = True,
                  wait_time: float = 0) -> Optional[List[np.ndarray]]:
        """Draw each image's ``topk`` classes (None: all), best first, with mmpretrain's
        :class:`UniversalVisualizer`; the drawn RGB images, or None without ``show`` and
        ``show_dir``."""
        if not show and show_dir is None:
            return None
        if self.visualizer is None:
            from mmpretrain.visualization import UniversalVisualizer
            self.visualizer = UniversalVisualizer()
        classes, text_cfg = self._drawable_classes()
        if show_dir is not None:
            Path(show_dir).mkdir(parents=True, exist_ok=True)
        visualization, used_names = [], set()
        for sample in preds:
            index = sample.sample_idx
            name = Path(sample.img_path).stem if 'img_path' in sample else f'array_{index}'
            if name in used_names:  # the same file twice, or two folders' equal names
                name = f'{name}_{index}'
            used_names.add(name)
            order = torch.argsort(sample.pred_score, descending=True, stable=True)[:topk]
            ranked = DataSample().set_pred_score(sample.pred_score).set_pred_label(order)
            self.visualizer.visualize_cls(
                load_image(ori_inputs[index])[..., ::-1], ranked, classes=classes,
                draw_gt=False, draw_score=draw_score, resize=resize,
                rescale_factor=rescale_factor, text_cfg=text_cfg, show=show,
                wait_time=wait_time, name=name,
                out_file=None if show_dir is None else str(Path(show_dir) / f'{name}.png'))
            visualization.append(self.visualizer.get_image())
        if show:
            self.visualizer.close()
        return visualization

    def _drawable_classes(self) -> Tuple[Optional[Tuple[str, ...]], dict]:
        """The class names to draw and the text options that render them: Chinese names
        need a font with Chinese glyphs (:data:`CJK_FONTS`); without one the images show
        class indices (the order of :attr:`classes`)."""
        if all(name.isascii() for name in self.classes):
            return self.classes, {}
        font = installed_cjk_font()
        if font is not None:
            return self.classes, dict(family=['monospace', font])
        print_log('ZeroShotInferencer: no font with Chinese glyphs is installed (e.g. the '
                  'fonts-noto-cjk package), so the images show class indices instead of the '
                  f'Chinese class names: {dict(enumerate(self.classes))}', logger='current',
                  level=logging.WARNING)
        return None, {}

    def postprocess(self,
                    preds: List[DataSample],
                    visualization: Optional[List[np.ndarray]],
                    return_datasamples: bool = False) -> Union[List[dict], List[DataSample]]:
        if return_datasamples:
            return preds
        results = []
        for sample in preds:
            scores = sample.pred_score
            label = int(scores.argmax())
            result = dict(pred_scores=scores.cpu().numpy(), pred_label=label,
                          pred_score=float(scores[label]), pred_class=self.classes[label])
            if 'img_path' in sample:
                result['img_path'] = sample.img_path
            results.append(result)
        return results
