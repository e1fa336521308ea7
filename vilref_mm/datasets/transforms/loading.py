"""Loading the image of an image-report record, from a file or from LMDB bytes."""
from typing import Optional

import mmcv
import numpy as np
from mmcv.transforms import LoadImageFromFile
from mmengine import fileio
from mmengine.logging import MMLogger
from mmpretrain.registry import TRANSFORMS

from ..records import RecordError


@TRANSFORMS.register_module()
class LoadImageFromRecord(LoadImageFromFile):
    """Decode the image of a record: ``img_bytes`` (LMDB datasets) or the file ``img_path``.

    The same pipeline thus serves :class:`~vilref_mm.datasets.ImageReportDataset` and
    :class:`~vilref_mm.datasets.ImageReportLMDBDataset`. A missing or undecodable image is a
    :class:`~vilref_mm.datasets.records.RecordError` naming the image and the record
    (``MANIFEST:LINE``); with ``ignore_empty=True`` it is logged and the transform returns
    None, so that a training dataset draws another sample.

    **Required keys:** ``img_bytes`` or ``img_path``; ``record`` (optional).

    **Added keys:** ``img`` (uint8 HWC, BGR for ``color_type='color'``), ``img_shape``,
    ``ori_shape``. ``img_bytes`` is removed.

    Args: those of :class:`mmcv.transforms.LoadImageFromFile`.
    """

    def transform(self, results: dict) -> Optional[dict]:
        img_bytes = results.pop('img_bytes', None)
        source = (results['img_path'] if img_bytes is None else
                  f'the image {results.get("image_id")!r} stored in the LMDB')
        try:
            if img_bytes is None:
                img_bytes = fileio.get(results['img_path'], backend_args=self.backend_args)
            img = mmcv.imfrombytes(img_bytes, flag=self.color_type,
                                   backend=self.imdecode_backend)
            if img is None:
                raise ValueError('the data is not a decodable image')
        except Exception as error:  # any failure to read or decode the image
            problem = RecordError(results.get('record', '<unknown record>'), 'image',
                                  f'cannot load {source} ({error}); replace the image or drop '
                                  'the record')
            if self.ignore_empty:
                MMLogger.get_current_instance().warning(f'{problem}; drawing another sample')
                return None
            raise problem from error
        if self.to_float32:
            img = img.astype(np.float32)
        results['img'] = img
        results['img_shape'] = img.shape[:2]
        results['ori_shape'] = img.shape[:2]
        return results
