"""ViLReF image and text features through mmpretrain's :class:`FeatureExtractor`."""
from math import ceil
from typing import List, Optional, Sequence, Union

import torch
from mmengine.registry import INFERENCERS
from mmpretrain.apis import FeatureExtractor
from mmpretrain.utils import track

from .base import Failed, Images, ViLReFInferencerMixin


@INFERENCERS.register_module()
class ViLReFFeatureExtractor(ViLReFInferencerMixin, FeatureExtractor):
    """mmpretrain's feature extractor for ViLReF: the image tower's features, and the text
    tower's (:meth:`extract_text`).

    Args:
        model, pretrained, device, trusted, cfg_options: The model, see
            :class:`~vilref_mm.apis.base.ViLReFInferencerMixin`.

    Example:
        >>> from vilref_mm.apis import ViLReFFeatureExtractor
        >>> extractor = ViLReFFeatureExtractor('configs/zero_shot/...py',
        ...                                    pretrained='checkpoints/vilref_vitb16.pth')
        >>> feats = torch.stack(extractor('photos/', batch_size=32))  # (N, D), unit norm
    """

    #: 'embedding': the L2-normalised joint-space embedding (D-d; zero-shot and retrieval);
    #: 'encoder': the image encoder's output before the projection (ViT ``ln_post(CLS)``,
    #: 768-d for ViT-B/16; the linear-probe feature).
    FEATURES = ('embedding', 'encoder')

    def __call__(self,
                 inputs: Images,
                 batch_size: int = 1,
                 feature: str = 'embedding',
                 failed: Optional[Failed] = None) -> List[torch.Tensor]:
        """Image features, one tensor per image that was read.

        Args:
            inputs: A path, a folder (its image files, sorted by name), a BGR uint8 array,
                or a list of them.
            batch_size: Images per forward pass.
            feature: One of :attr:`FEATURES`.
            failed: A list to collect unreadable image files in as (name, reason); they
                get no feature. None: an unreadable file raises ``UnreadableImageError``.

        Returns:
            list[torch.Tensor]: (D,) features on the model's device, in input order.
        """
        if feature not in self.FEATURES:
            raise ValueError(f'feature={feature!r} is not one of {self.FEATURES}')
        ori_inputs = self._inputs_to_list(inputs)
        feats = []
        for data in track(self.preprocess(ori_inputs, batch_size, failed),
                          'Extract features', total=ceil(len(ori_inputs) / batch_size)):
            feats.extend(self.forward(data, feature))
        return feats

    @torch.no_grad()
    def forward(self, data: dict, feature: str = 'embedding') -> List[torch.Tensor]:
        images = self.model.data_preprocessor(data, False)['inputs']['images']
        if feature == 'embedding':
            return list(self.model.extract_image_feat(images))
        feats = self.model.image_encoder(images)
        return list(feats[-1] if isinstance(feats, (tuple, list)) else feats)

    @torch.no_grad()
    def extract_text(self, texts: Union[str, Sequence[str]],
                     batch_size: int = 256) -> List[torch.Tensor]:
        """L2-normalised (D,) text embeddings, one per text, in the joint space of the
        image embeddings."""
        texts = [texts] if isinstance(texts, str) else list(texts)
        if not texts:
            raise ValueError('no texts given')
        feats = []
        for start in range(0, len(texts), batch_size):
            feats.extend(self.model.extract_text_feat(texts[start:start + batch_size]))
        return feats
