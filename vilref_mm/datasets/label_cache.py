"""Labels of a dataset's reports: computed once with the report labeler, then cached.

The cache is a ``.npy`` file of shape (N, C) whose name carries a fingerprint of everything the
labels depend on: the reports and eyes to label, the lexicon's content (with the files it
extends) and the labeler's code. Any change gives a new name, so a stale cache is never read;
runs, ranks and workers with the same inputs share one file. It is written atomically.

Under ``torch.distributed`` rank 0 labels and writes the cache while the other ranks wait at a
barrier, then read it.
"""
import hashlib
import json
import time
from pathlib import Path
from typing import Optional, Sequence, Tuple

import numpy as np
from mmengine.dist import barrier, get_rank, is_distributed
from mmengine.logging import MMLogger
from torch.utils.data import get_worker_info

from vilref_mm import labeling
from vilref_mm.labeling import Lexicon, ReportLabeler
from vilref_mm.labeling.lexicon import read_lexicon_content
from vilref_mm.utils.fileio import atomic_open
from .progress import track_progress

_LABELING_DIR = Path(labeling.__file__).parent


def labeling_fingerprint(lexicon: Lexicon) -> 'hashlib._Hash':
    """A SHA-256 of the labeler's code and of the lexicon's merged content."""
    digest = hashlib.sha256()
    for source in sorted(_LABELING_DIR.glob('*.py')):
        digest.update(source.read_bytes())
    content = read_lexicon_content(lexicon.path)
    digest.update(json.dumps(content, sort_keys=True, ensure_ascii=False, default=str).encode())
    return digest


def label_cache_file(reports: Sequence[Tuple[str, Optional[str]]], lexicon: Lexicon,
                     cache_stem: Path) -> Path:
    """``<cache_stem>.labels-<fingerprint>.npy`` for these reports and this lexicon."""
    digest = labeling_fingerprint(lexicon)
    for report, eye in reports:
        digest.update(f'{len(report)} {eye}\n{report}'.encode())
    return Path(f'{cache_stem}.labels-{digest.hexdigest()[:16]}.npy')


def label_vectors(reports: Sequence[Tuple[str, Optional[str]]], labeler: ReportLabeler,
                  progress: Optional[bool] = None) -> np.ndarray:
    """Label vectors of ``reports`` by ``labeler``, with a progress bar.

    Args:
        reports: ``(report, eye)`` pairs; eye is 'left', 'right' or None.
        labeler: The report labeler.
        progress: Draw a progress bar on stderr (True), never (False) or when stderr is a
            terminal (None); only rank 0 draws.

    Returns:
        float32 array (N, C) over ``labeler.classes``.
    """
    labels = np.zeros((len(reports), len(labeler.classes)), dtype=np.float32)
    for index, (report, eye) in enumerate(track_progress(reports, len(reports), progress)):
        labels[index] = labeler(report, eye)
    return labels


def report_labels(reports: Sequence[Tuple[str, Optional[str]]], lexicon: Lexicon,
                  cache_stem: Optional[Path] = None,
                  progress: Optional[bool] = None) -> np.ndarray:
    """Label vectors of ``reports``, read from the cache or computed (and cached).

    Labels are computed in the main process only: a dataloader worker that finds no cache
    raises instead of labelling the whole dataset again in every worker. Under
    ``torch.distributed`` with a cache, rank 0 reads or labels and writes it while the other
    ranks wait at a barrier, then read it; a rank that cannot read it then (a folder rank 0
    cannot write, or one not shared by all ranks) labels on its own, with a warning.

    Args:
        reports: ``(report, eye)`` pairs; eye is 'left', 'right' or None.
        lexicon: The lexicon of the :class:`~vilref_mm.labeling.ReportLabeler`.
        cache_stem: Path the cache file name starts with (next to the data); None: no cache.
        progress: Draw a progress bar while labelling (True), never (False) or when stderr
            is a terminal (None); only rank 0 draws.

    Returns:
        float32 array (N, C) over ``lexicon.classes``.
    """
    cache_file = label_cache_file(reports, lexicon, cache_stem) if cache_stem else None
    rank_0_first = (cache_file is not None and is_distributed()
                    and get_worker_info() is None)
    if not rank_0_first:
        return _cached_or_computed(reports, lexicon, cache_file, progress)
    if get_rank() == 0:
        try:
            return _cached_or_computed(reports, lexicon, cache_file, progress)
        finally:  # release the other ranks on an error too: they then meet it themselves
            barrier()
    barrier()
    if not cache_file.is_file():
        MMLogger.get_current_instance().warning(
            f'rank {get_rank()} finds no label cache {cache_file} after rank 0 labelled (is '
            'the folder writable and shared by all ranks?); labelling on this rank too')
    return _cached_or_computed(reports, lexicon, cache_file, progress)


def _cached_or_computed(reports: Sequence[Tuple[str, Optional[str]]], lexicon: Lexicon,
                        cache_file: Optional[Path], progress: Optional[bool]) -> np.ndarray:
    """The labels of :func:`report_labels`, in this process alone."""
    logger = MMLogger.get_current_instance()
    shape = (len(reports), len(lexicon.classes))
    if cache_file is not None and cache_file.is_file():
        labels = _load(cache_file, shape)
        if labels is not None:
            logger.info(f'read the labels of {len(reports):,} reports from {cache_file}')
            return labels
    if get_worker_info() is not None:
        raise RuntimeError(
            'report labels must be computed in the main process, not in a dataloader worker: '
            'call dataset.full_init() before building the dataloader (lazy_init=False does), '
            'or add labels to the data with tools/data/label_reports.py')
    logger.info(f'labelling {len(reports):,} reports with the lexicon {lexicon.path}'
                + (f'; the labels will be cached in {cache_file}' if cache_file else ''))
    labeler = ReportLabeler(lexicon)
    start = time.perf_counter()
    labels = label_vectors(reports, labeler, progress)
    seconds = time.perf_counter() - start
    logger.info(f'labelled {len(reports):,} reports in {seconds:.1f} s '
                f'({len(reports) / max(seconds, 1e-9):,.0f} reports/s)')
    if cache_file is not None:
        _save(labels, cache_file)
    return labels


def _load(cache_file: Path, shape: Tuple[int, int]) -> Optional[np.ndarray]:
    """The cached labels, or None (with a warning) when the file is unusable."""
    try:
        labels = np.load(cache_file, allow_pickle=False)
    except (OSError, ValueError) as error:
        problem = f'is unreadable ({error})'
    else:
        if labels.shape == shape and labels.dtype == np.float32:
            return labels
        problem = f'holds a {labels.dtype} array of shape {labels.shape}, not float32 {shape}'
    MMLogger.get_current_instance().warning(
        f'label cache {cache_file} {problem}; labelling again and replacing it')
    return None


def _save(labels: np.ndarray, cache_file: Path) -> None:
    """Write ``labels`` to ``cache_file`` atomically; a read-only place only costs a warning."""
    try:
        with atomic_open(cache_file) as file:
            np.save(file, labels)
    except OSError as error:
        MMLogger.get_current_instance().warning(
            f'cannot write the label cache {cache_file} ({error}); the labels will be computed '
            'again next time (pass label_cache=<a writable folder>)')
