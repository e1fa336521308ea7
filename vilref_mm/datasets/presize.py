"""Pre-sizing at preparation time: large images re-encoded as smaller JPEGs.

``tools/data/build_lmdb.py --max-size`` and ``tools/data/presize_images.py`` store images with
their longer side at most a few hundred pixels, so that training decodes a fraction of the
pixels of a full-size fundus photograph.
"""
import io
from pathlib import Path
from typing import Optional, Tuple

from PIL import Image, ImageOps

from .records import RecordError

#: JPEG quality of re-encoded images.
DEFAULT_QUALITY = 95
# Image modes that convert to 8-bit RGB as the loaders convert them (not 16-bit or float).
_CONVERTIBLE_MODES = frozenset({'1', 'L', 'LA', 'P', 'PA', 'RGB', 'RGBA', 'RGBX', 'CMYK',
                                'YCbCr'})


def presize_image(data: bytes, max_size: int, quality: int = DEFAULT_QUALITY) -> bytes:
    """Shrink an encoded image so that its longer side is at most ``max_size``.

    A larger image is decoded (at a reduced JPEG scale that keeps at least twice the target
    size: PIL's ``thumbnail``), resized with the Lanczos filter keeping its aspect ratio,
    turned upright by its EXIF orientation (as the loaders turn it) and re-encoded as a JPEG:
    greyscale stays greyscale, any other mode becomes RGB (alpha dropped, as the loaders drop
    it). An image no larger than ``max_size`` is returned unchanged, byte for byte.

    Args:
        data: The encoded image (any format PIL reads).
        max_size: The longest side allowed, in pixels.
        quality: JPEG quality (1-95) of a re-encoded image.

    Returns:
        The JPEG bytes of the shrunk image, or ``data`` itself.

    Raises:
        ValueError: ``data`` is not a readable image, or a large image has a mode (16-bit,
            float) that the loaders do not read as 8-bit colour.
    """
    check_presize_options(max_size, quality)
    try:
        image = Image.open(io.BytesIO(data))
    except Exception as error:  # PIL raises many types for a broken file
        raise ValueError(f'it is not a readable image ({error})') from error
    if max(image.size) <= max_size:
        return data
    if image.mode not in _CONVERTIBLE_MODES:
        raise ValueError(f'its mode {image.mode} (16-bit or float samples) has no 8-bit JPEG '
                         'equivalent; convert the image to 8-bit RGB first')
    try:
        image.thumbnail((max_size, max_size), Image.Resampling.LANCZOS)
        image = ImageOps.exif_transpose(image)
    except Exception as error:  # a file broken after its header
        raise ValueError(f'it is not a readable image ({error})') from error
    out = io.BytesIO()
    image.convert('L' if image.mode == 'L' else 'RGB').save(out, format='JPEG',
                                                            quality=quality)
    return out.getvalue()


def read_image_file(path: str, record: str, max_size: Optional[int] = None,
                    quality: int = DEFAULT_QUALITY) -> Tuple[bytes, bool]:
    """The bytes of an image file, checked to be an image and, with ``max_size``, shrunk by
    :func:`presize_image`.

    Args:
        path: The image file.
        record: Where the record naming it is (``MANIFEST:LINE``), for errors.
        max_size: The longest side allowed (None: the file as it is).
        quality: JPEG quality of a re-encoded image.

    Returns:
        The bytes, and whether they were re-encoded.

    Raises:
        RecordError: The file cannot be read or is not an image (field ``image``).
        ValueError: ``max_size`` or ``quality`` is out of range.
    """
    if max_size is not None:
        check_presize_options(max_size, quality)
    try:
        data = Path(path).read_bytes()
    except OSError as error:
        raise RecordError(record, 'image', f'cannot read {path} ({error.strerror}); fix the '
                          'path or drop the record') from error
    try:
        Image.open(io.BytesIO(data)).verify()
    except Exception as error:  # PIL raises many types for a broken file
        raise RecordError(record, 'image', f'{path} is not a readable image ({error}); replace '
                          'the file or drop the record') from error
    if max_size is None:
        return data, False
    try:
        encoded = presize_image(data, max_size, quality)
    except ValueError as error:
        raise RecordError(record, 'image', f'{path} cannot be pre-sized: {error}; replace the '
                          'file or drop the record') from error
    return encoded, encoded is not data


def check_presize_options(max_size: int, quality: int) -> None:
    """Raise a ValueError unless ``max_size`` >= 1 and ``quality`` is in [1, 95]."""
    if max_size < 1 or not 1 <= quality <= 95:
        raise ValueError(f'max_size must be a positive number of pixels and quality in '
                         f'[1, 95], got {max_size} and {quality}')
