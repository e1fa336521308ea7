"""Transforms of the image-report pipeline: load the image, tokenise the report, pack."""
from .formatting import PackImageReportInputs, TokenizeReport
from .loading import LoadImageFromRecord

__all__ = ['LoadImageFromRecord', 'TokenizeReport', 'PackImageReportInputs']
