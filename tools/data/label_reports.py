"""Add expert-knowledge labels to a JSON Lines manifest of fundus reports (docs/labels.md).

Every record (``{"image": ..., "report": ..., "eye": "left" | "right" | null}``) gets a ``labels``
field: label key -> 1.0 (asserted), 0.5 (uncertain) or 0.0. Nothing is written unless every
record is valid (``image`` and ``report`` are required, as for the datasets); OUT is replaced
atomically (it may be IN), and a temporary that a killed run left beside it is removed.
A progress bar is drawn on stderr when it is a terminal (``--progress`` / ``--no-progress``).

    python tools/data/label_reports.py IN.jsonl OUT.jsonl [--lexicon FILE] [--no-progress]
"""
import argparse
import json
import sys
import time
from pathlib import Path
from typing import List, Optional, Sequence

import numpy as np

from vilref_mm.datasets.label_cache import label_vectors
from vilref_mm.datasets.records import RecordError, parse_manifest_line
from vilref_mm.labeling import LexiconError, ReportLabeler
from vilref_mm.utils.fileio import write_text_atomic


def read_manifest(path: Path) -> List[dict]:
    """Parse and check every record of ``path`` (blank lines are skipped).

    Raises:
        FileNotFoundError: ``path`` is not a file.
        RecordError: A bad line; the message names the file, the line and the field.
    """
    if not path.is_file():
        raise FileNotFoundError(f'{path}: no such file; pass the JSON Lines manifest to label')
    with path.open('rb') as lines:
        records = (parse_manifest_line(line, f'{path}:{number}')
                   for number, line in enumerate(lines, 1))
        return [record for record in records if record is not None]


def print_summary(classes: Sequence[str], vectors: np.ndarray, seconds: float) -> None:
    """Per-class counts, shares of reports without findings and with uncertain ones, speed."""
    count = len(vectors)
    print(f'labelled {count:,} reports in {seconds:.2f} s, segmenter start-up included '
          f'({count / max(seconds, 1e-9):,.0f} reports/s)')
    print(f'{"label":<26}{"1.0":>9}{"0.5":>9}')
    for index, key in enumerate(classes):
        column = vectors[:, index]
        print(f'{key:<26}{int((column == 1.0).sum()):>9,}{int((column == 0.5).sum()):>9,}')
    share = 100 / max(count, 1)
    print(f'no finding (all labels 0): {share * int((vectors.max(axis=1) == 0).sum()):.1f}% of '
          f'reports; uncertain finding: {share * int((vectors == 0.5).any(axis=1).sum()):.1f}%')


def main(argv: Optional[Sequence[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('input', type=Path, help='JSON Lines manifest with a `report` field')
    parser.add_argument('output', type=Path, help='where to write the labelled manifest')
    parser.add_argument('--lexicon', type=Path,
                        help='lexicon YAML file (default: the one shipped with vilref_mm)')
    parser.add_argument('--progress', action=argparse.BooleanOptionalAction,
                        help='draw a progress bar on stderr (default: when it is a terminal)')
    args = parser.parse_args(argv)
    try:
        labeler = ReportLabeler(args.lexicon)
        records = read_manifest(args.input)
    except (FileNotFoundError, LexiconError, RecordError) as error:
        sys.exit(f'error: {error}')

    start = time.perf_counter()
    vectors = label_vectors([(record['report'], record.get('eye')) for record in records],
                            labeler, args.progress)
    seconds = time.perf_counter() - start
    for record, vector in zip(records, vectors.tolist()):
        record['labels'] = dict(zip(labeler.classes, vector))
    write_text_atomic(args.output, (json.dumps(record, ensure_ascii=False) + '\n'
                                    for record in records))
    print_summary(labeler.classes, vectors, seconds)
    print(f'wrote {args.output}')


if __name__ == '__main__':
    main()
