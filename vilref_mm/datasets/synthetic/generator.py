"""The synthetic fundus dataset: per-sample generation and the on-disk layouts.

``OUT_DIR`` after :func:`generate_synthetic_fundus`::

    images/{train,val,test}/{split}_{index:06d}.png       colour fundus images
    {train,val,test}.jsonl                               {"image", "report", "eye", "findings"}
    vessels/{images,annotations}/{training,validation}/  mmseg DRIVEDataset layout
        {name}.png / {name}_manual1.png                  (annotation: 0 background, 1 vessel)
    odoc/{images,annotations}/{training,validation}/     mmseg REFUGEDataset layout
        {name}.png / {name}.png                          (0 background, 1 optic cup, 2 optic disc)
    meta.json                                            seed, size, counts, classes, version

The segmentation layouts take the train (training) and val (validation) splits; their images
are hard links to ``images/`` (copies where the file system has no hard links).

Every sample is drawn from its own random streams, seeded by ``(seed, split, index)``: the same
seed gives byte-identical files whatever the number of worker processes.
"""
import json
import os
import time
from dataclasses import dataclass
from functools import lru_cache
from itertools import chain
from multiprocessing import get_context
from pathlib import Path
from typing import Dict, Iterator, Optional, Tuple, Union

import cv2
import numpy as np

from ...labeling import ReportLabeler
from ...utils.fileio import write_text_atomic
from ..progress import track_progress
from .cases import FundusCase, sample_case
from .fundus import FundusImage, draw_fundus
from .reports import write_report

GENERATOR_VERSION = '1.0'
SPLITS = ('train', 'val', 'test')
#: Which splits feed the segmentation layouts, and their mmseg folder names.
SEGMENTATION_SPLITS = {'train': 'training', 'val': 'validation'}
DRIVE_SEG_SUFFIX = '_manual1.png'
REFUGE_CUP, REFUGE_DISC = 1, 2


@lru_cache(maxsize=1)
def label_classes() -> Tuple[str, ...]:
    """The ordered label keys of the default lexicon (what ``findings`` covers)."""
    return tuple(ReportLabeler().classes)


@dataclass
class SyntheticSample:
    """One generated sample.

    Attributes:
        name: File stem, ``{split}_{index:06d}``.
        split: 'train', 'val' or 'test'.
        case: What the image shows.
        report: The Chinese report.
        findings: Ground-truth label values over :func:`label_classes`.
        drawing: The image and its masks; None when only the report was asked for.
    """

    name: str
    split: str
    case: FundusCase
    report: str
    findings: Dict[str, float]
    drawing: Optional[FundusImage] = None

    @property
    def eye(self) -> str:
        return self.case.eye

    def record(self) -> dict:
        """The manifest line of this sample."""
        return {'image': f'images/{self.split}/{self.name}.png', 'report': self.report,
                'eye': self.eye, 'findings': self.findings}


def make_sample(seed: int, split: str, index: int, size: int = 256,
                render: bool = True) -> SyntheticSample:
    """Generate one sample; the result depends only on the arguments.

    Args:
        seed: Dataset seed.
        split: One of :data:`SPLITS`.
        index: Index of the sample in its split.
        size: Image side in pixels.
        render: False to skip drawing (case and report only, about 100x faster).

    Returns:
        The sample.
    """
    if split not in SPLITS:
        raise ValueError(f'split must be one of {SPLITS}, got {split!r}')
    streams = np.random.SeedSequence([seed, SPLITS.index(split), index]).spawn(3)
    case_rng, report_rng, draw_rng = (np.random.default_rng(s) for s in streams)
    case = sample_case(case_rng)
    report = write_report(case, report_rng)
    drawing = draw_fundus(case, size, draw_rng) if render else None
    return SyntheticSample(f'{split}_{index:06d}', split, case, report,
                           case.labels(label_classes()), drawing)


def iter_samples(seed: int, split: str, count: int, size: int = 256, render: bool = True,
                 num_workers: int = 1) -> Iterator[SyntheticSample]:
    """The samples ``0 .. count-1`` of a split, in order.

    With ``num_workers > 1`` they are made in freshly started worker processes (a forked
    OpenCV can deadlock), each drawing with one OpenCV thread; a script that asks for workers
    needs the usual ``if __name__ == '__main__':`` guard.
    """
    jobs = [(seed, split, index, size, render) for index in range(count)]
    if num_workers <= 1 or count <= 1:
        yield from (make_sample(*job) for job in jobs)
        return
    with get_context('spawn').Pool(num_workers, initializer=cv2.setNumThreads,
                                   initargs=(1,)) as pool:
        yield from pool.imap(_make_sample_job, jobs, chunksize=8)


def _make_sample_job(job: tuple) -> SyntheticSample:
    return make_sample(*job)


def _write_bytes(path: Path, data: bytes) -> None:
    # A fresh file rather than a truncated one: ext4 flushes a truncated file on close, which
    # makes regenerating over an existing dataset 30x slower.
    path.unlink(missing_ok=True)
    with open(path, 'wb') as file:
        file.write(data)


def _link_or_write(path: Path, source: Path, data: bytes) -> None:
    """A hard link to ``source`` (same bytes, no extra space), or a copy where links fail."""
    path.unlink(missing_ok=True)
    try:
        os.link(source, path)
    except OSError:
        _write_bytes(path, data)


def _png(array: np.ndarray) -> bytes:
    ok, encoded = cv2.imencode('.png', array)
    if not ok:
        raise RuntimeError(f'OpenCV could not encode an array of shape {array.shape} as PNG')
    return encoded.tobytes()


class _Layout:
    """Creates the output folders and writes the files of one sample."""

    def __init__(self, out_dir: Path):
        self.root = out_dir
        for split in SPLITS:
            (out_dir / 'images' / split).mkdir(parents=True, exist_ok=True)
        for task in ('vessels', 'odoc'):
            for folder in ('images', 'annotations'):
                for name in SEGMENTATION_SPLITS.values():
                    (out_dir / task / folder / name).mkdir(parents=True, exist_ok=True)

    def write(self, sample: SyntheticSample) -> None:
        drawing = sample.drawing
        image = _png(drawing.image)
        source = self.root / 'images' / sample.split / f'{sample.name}.png'
        _write_bytes(source, image)
        folder = SEGMENTATION_SPLITS.get(sample.split)
        if folder is None:
            return
        vessels, odoc = self.root / 'vessels', self.root / 'odoc'
        _link_or_write(vessels / 'images' / folder / f'{sample.name}.png', source, image)
        _write_bytes(vessels / 'annotations' / folder / f'{sample.name}{DRIVE_SEG_SUFFIX}',
                     _png(drawing.vessels))
        optic = np.zeros(drawing.disc.shape, np.uint8)
        optic[drawing.disc] = REFUGE_DISC
        optic[drawing.cup] = REFUGE_CUP
        _link_or_write(odoc / 'images' / folder / f'{sample.name}.png', source, image)
        _write_bytes(odoc / 'annotations' / folder / f'{sample.name}.png', _png(optic))


def generate_synthetic_fundus(out_dir: Union[str, Path], num_train: int = 800,
                              num_val: int = 200, num_test: int = 200, size: int = 256,
                              seed: int = 0, num_workers: int = 1,
                              progress: Optional[bool] = None) -> dict:
    """Generate the synthetic fundus dataset into ``out_dir``.

    Args:
        out_dir: Output folder (created; existing files of the same names are overwritten).
        num_train: Number of training images.
        num_val: Number of validation images.
        num_test: Number of test images.
        size: Image side in pixels (>= 32).
        seed: Dataset seed; the same seed gives byte-identical outputs.
        num_workers: Worker processes drawing images (1: in this process).
        progress: Draw a progress bar on stderr, advanced as each image is written (True),
            never (False) or when stderr is a terminal (None); only rank 0 draws.

    Returns:
        The content of ``meta.json`` (plus ``seconds``, the wall time, which is not written).
    """
    counts = {'train': num_train, 'val': num_val, 'test': num_test}
    for split, count in counts.items():
        if count < 0:
            raise ValueError(f'num_{split} must be >= 0, got {count}')
    out_dir = Path(out_dir)
    layout = _Layout(out_dir)
    start = time.perf_counter()
    samples = chain.from_iterable(iter_samples(seed, split, counts[split], size,
                                               num_workers=num_workers) for split in SPLITS)
    lines = {split: [] for split in SPLITS}
    for sample in track_progress(samples, sum(counts.values()), progress):
        layout.write(sample)
        lines[sample.split].append(json.dumps(sample.record(), ensure_ascii=False) + '\n')
    for split in SPLITS:
        write_text_atomic(out_dir / f'{split}.jsonl', lines[split])
    meta = {'generator': 'vilref_mm.datasets.synthetic', 'version': GENERATOR_VERSION,
            'seed': seed, 'size': size, 'counts': counts, 'classes': list(label_classes()),
            'segmentation': {'vessels': 'mmseg DRIVEDataset', 'odoc': 'mmseg REFUGEDataset',
                             'splits': SEGMENTATION_SPLITS}}
    write_text_atomic(out_dir / 'meta.json',
                      [json.dumps(meta, ensure_ascii=False, indent=2) + '\n'])
    return {**meta, 'seconds': time.perf_counter() - start}
