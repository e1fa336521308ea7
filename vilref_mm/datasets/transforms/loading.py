"""Loading the image of an image-report record, from a file or from LMDB bytes."""
import io
from typing import Optional

import mmcv
import numpy as np
from mmcv.transforms import LoadImageFromFile
from mmengine import fileio
from mmengine.logging import MMLogger
from mmpretrain.registry import TRANSFORMS
from PIL import Image, ImageOps, JpegImagePlugin

from ..records import RecordError


def decode_jpeg_reduced(data: bytes, min_side: int) -> Optional[np.ndarray]:
    """Decode a JPEG at the smallest libjpeg scale (1/2, 1/4 or 1/8) that keeps both sides at
    least ``min_side`` pixels (PIL's ``Image.draft``), upright by its EXIF orientation.

    Decoding at 1/s skips most of the inverse DCT work and gives the s x s block means
    (approximately), so a 2048 px photograph needed at 256 px decodes several times faster.

    Args:
        data: The encoded image.
        min_side: The smallest size the shorter side may be reduced to.

    Returns:
        The uint8 BGR image, or None when ``data`` is not an 8-bit RGB or greyscale JPEG at
        least twice ``min_side`` on its shorter side (or PIL cannot read it): decode it in
        full then.
    """
    try:
        image = Image.open(io.BytesIO(data))
        if (not isinstance(image, JpegImagePlugin.JpegImageFile)
                or image.mode not in ('RGB', 'L') or min(image.size) < 2 * min_side):
            return None
        image.draft('RGB', (min_side, min_side))
        image = ImageOps.exif_transpose(image).convert('RGB')
    except Exception:  # PIL raises many types for a broken file: the full decode decides
        return None
    return mmcv.rgb2bgr(np.asarray(image))


@TRANSFORMS.register_module()
class LoadImageFromRecord(LoadImageFromFile):
    """Decode the image of a record: ``img_bytes`` (LMDB datasets) or the file ``img_path``.

    The same pipeline thus serves :class:`~vilref_mm.datasets.ImageReportDataset` and
    :class:`~vilref_mm.datasets.ImageReportLMDBDataset`. A missing or undecodable image is a
    :class:`~vilref_mm.datasets.records.RecordError` naming the image and the record
    (``MANIFEST:LINE``); with ``ignore_empty=True`` it is logged and the transform returns
    None, so that a training dataset draws another sample.

    With ``decode_min_side`` a large JPEG is decoded at a reduced scale (1/2, 1/4 or 1/8,
    :func:`decode_jpeg_reduced`) that keeps its shorter side at least ``decode_min_side``
    pixels: set it to the smallest side the next transforms need without upsampling (for
    ``RandomResizedCrop`` of size S and area fraction at least a, S / a: a crop's shorter side
    is at least a times the image's). Other images (PNG, CMYK JPEG, JPEGs smaller than twice
    ``decode_min_side``) are decoded in full, bit-exact with ``decode_min_side=None``.

    **Required keys:** ``img_bytes`` or ``img_path``; ``record`` (optional).

    **Added keys:** ``img`` (uint8 HWC, BGR for ``color_type='color'``), ``img_shape``,
    ``ori_shape`` (both the decoded shape). ``img_bytes`` is removed.

    Args:
        decode_min_side: Decode large JPEGs at a reduced scale keeping at least this many
            pixels on the shorter side (None: always in full). Needs ``color_type='color'``.
        **kwargs: Those of :class:`mmcv.transforms.LoadImageFromFile`.
    """

    def __init__(self, decode_min_side: Optional[int] = None, **kwargs):
        super().__init__(**kwargs)
        if decode_min_side is not None and (decode_min_side < 1 or self.color_type != 'color'):
            raise ValueError('LoadImageFromRecord: decode_min_side must be a positive number of '
                             "pixels and needs color_type='color', got "
                             f'{decode_min_side} and {self.color_type!r}')
        self.decode_min_side = decode_min_side

    def transform(self, results: dict) -> Optional[dict]:
        img_bytes = results.pop('img_bytes', None)
        source = (results['img_path'] if img_bytes is None else
                  f'the image {results.get("image_id")!r} stored in the LMDB')
        try:
            if img_bytes is None:
                img_bytes = fileio.get(results['img_path'], backend_args=self.backend_args)
            img = None if self.decode_min_side is None else decode_jpeg_reduced(
                img_bytes, self.decode_min_side)
            if img is None:
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

    def __repr__(self) -> str:
        return f'{super().__repr__()[:-1]}, decode_min_side={self.decode_min_side})'
