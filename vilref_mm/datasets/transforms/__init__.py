"""Transforms of the image-report pipeline: load the image, tokenise the report, pack."""
from .formatting import PackImageReportInputs, TokenizeReport
from .loading import LoadImageFromRecord, decode_jpeg_reduced

__all__ = ['LoadImageFromRecord', 'decode_jpeg_reduced', 'TokenizeReport',
           'PackImageReportInputs']
