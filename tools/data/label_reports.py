"""Add expert-knowledge labels to a JSON Lines manifest of fundus reports (docs/labels.md).

Every record (``{"image": ..., "report": ..., "eye": "left" | "right" | null}``) gets a ``labels``
field: label key -> 1.0 (asserted), 0.5 (uncertain) or 0.0. Nothing is written unless every
record is valid; OUT is replaced atomically (it may be IN).

    python tools/data/label_reports.py IN.jsonl OUT.jsonl [--lexicon FILE]
"""
import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import List, Optional, Sequence

import numpy as np

from vilref_mm.labeling import LexiconError, ReportLabeler
from vilref_mm.labeling.labeler import EYES


class ManifestError(ValueError):
    """An invalid manifest record; the message names the file and the line."""


def read_manifest(path: Path) -> List[dict]:
    """Parse and check every record of ``path`` (blank lines are skipped)."""
    if not path.is_file():
        raise ManifestError(f'{path}: no such file')
    records = []
    with path.open('rb') as lines:
        for number, raw in enumerate(lines, 1):
            where = f'{path}:{number}'
            try:
                line = raw.decode('utf-8')
            except UnicodeDecodeError as error:
                raise ManifestError(f'{where}: not UTF-8 text ({error.reason}); save the manifest '
                                    'as UTF-8') from error
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as error:
                raise ManifestError(f'{where}: not valid JSON ({error.msg}, column '
                                    f'{error.colno}); fix or remove the line') from error
            if not isinstance(record, dict):
                raise ManifestError(f'{where}: a record must be a JSON object, got '
                                    f'{type(record).__name__}')
            report = record.get('report')
            if 'report' not in record:
                raise ManifestError(f"{where}: field 'report' is missing; every record needs "
                                    'the report text')
            if not isinstance(report, str):
                raise ManifestError(f"{where}: field 'report' must be a string, got "
                                    f'{type(report).__name__}')
            if not report.strip():
                raise ManifestError(f"{where}: field 'report' is empty; drop the record or fill "
                                    'in its report')
            if record.get('eye') is not None and record['eye'] not in EYES:
                raise ManifestError(f"{where}: field 'eye' must be 'left', 'right' or null, got "
                                    f"{record['eye']!r}")
            records.append(record)
    return records


def write_manifest(records: List[dict], path: Path) -> None:
    """Write ``records`` as JSON Lines to ``path`` atomically (temp file + os.replace)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp_name = tempfile.mkstemp(dir=path.parent, prefix=f'.{path.name}.', suffix='.tmp')
    try:
        with os.fdopen(handle, 'w', encoding='utf-8') as temp:
            for record in records:
                temp.write(json.dumps(record, ensure_ascii=False) + '\n')
        os.replace(temp_name, path)
    except BaseException:
        os.unlink(temp_name)
        raise


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
    args = parser.parse_args(argv)
    try:
        labeler = ReportLabeler(args.lexicon)
        records = read_manifest(args.input)
    except (LexiconError, ManifestError) as error:
        sys.exit(f'error: {error}')

    start = time.perf_counter()
    vectors = np.zeros((len(records), len(labeler.classes)), dtype=np.float32)
    for index, record in enumerate(records):
        vectors[index] = labeler(record['report'], record.get('eye'))
    seconds = time.perf_counter() - start
    for record, vector in zip(records, vectors.tolist()):
        record['labels'] = dict(zip(labeler.classes, vector))
    write_manifest(records, args.output)
    print_summary(labeler.classes, vectors, seconds)
    print(f'wrote {args.output}')


if __name__ == '__main__':
    main()
