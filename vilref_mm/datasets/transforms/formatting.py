"""Tokenising reports and packing image-report samples for :class:`~vilref_mm.models.ViLReF`."""
from typing import Sequence, Union

import torch
from mmcv.transforms import BaseTransform
from mmpretrain.datasets.transforms import PackInputs
from mmpretrain.registry import TOKENIZER, TRANSFORMS

from vilref_mm.models.text import tokenizer as _tokenizer  # noqa: F401  registers the tokenizer


@TRANSFORMS.register_module()
class TokenizeReport(BaseTransform):
    """Tokenise the report of a sample into a fixed-length id tensor (in the workers).

    **Required keys:** ``text``. **Added keys:** ``text_ids`` (LongTensor of shape
    (context_length,)).

    Args:
        tokenizer: Config of a tokenizer in mmpretrain's ``TOKENIZER`` registry, or a
            tokenizer (``tokenizer(str) -> LongTensor (L,)``). Built once per transform.
            Defaults to the Chinese BERT tokenizer with the pre-training context length 100.
    """

    def __init__(self,
                 tokenizer: Union[dict, object] = dict(
                     type='ChineseBertTokenizer', context_length=100)):
        self.tokenizer = TOKENIZER.build(tokenizer) if isinstance(tokenizer, dict) else tokenizer

    def transform(self, results: dict) -> dict:
        results['text_ids'] = self.tokenizer(results['text'])
        return results

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}(tokenizer={self.tokenizer!r})'


@TRANSFORMS.register_module()
class PackImageReportInputs(PackInputs):
    """Pack an image-report sample as :meth:`ViLReF.loss` and its data preprocessor take it.

    **Required keys:** ``img`` (HWC), ``text_ids``; ``gt_score`` (label vector, optional).

    **Output:** ``inputs = {'images': CHW tensor of the image's dtype (uint8: normalised
    later, on the device, by ViLReFDataPreprocessor), 'text_ids': (L,) long tensor, 'labels':
    (C,) float tensor}`` and ``data_samples``, a :class:`mmpretrain.structures.DataSample`
    with ``gt_score`` (the same label tensor) and the ``meta_keys`` present in the sample.

    Args:
        meta_keys: Keys copied into the data sample's metainfo when present.
    """

    DEFAULT_META_KEYS = PackInputs.DEFAULT_META_KEYS + ('image_id', 'eye', 'record')

    def __init__(self, meta_keys: Sequence[str] = DEFAULT_META_KEYS):
        super().__init__(input_key='img', meta_keys=meta_keys)

    def transform(self, results: dict) -> dict:
        missing = [key for key in ('img', 'text_ids') if key not in results]
        if missing:
            raise KeyError(f'PackImageReportInputs: the sample lacks {missing}; the pipeline '
                           'must load the image (LoadImageFromRecord) and tokenise the report '
                           '(TokenizeReport) first')
        packed = super().transform(results)
        data_sample = packed['data_samples']
        inputs = {'images': packed['inputs'],
                  'text_ids': torch.as_tensor(results['text_ids'], dtype=torch.long)}
        if 'gt_score' in data_sample:
            inputs['labels'] = data_sample.gt_score
        return {'inputs': inputs, 'data_samples': data_sample}
