"""Reading and checking the records of image-report datasets (manifest lines, LMDB pairs).

Every problem is a :class:`RecordError` that names where the record is (``FILE:LINE`` of a
manifest, ``DIR/pairs #INDEX`` of an LMDB), the field, and what to do. A dataset either raises
the first one or, with ``skip_bad_records=True``, skips the record and logs a summary
(:class:`BadRecords`).
"""
import json
import math
from typing import Any, Iterator, List, Mapping, Optional, Sequence

import numpy as np
from mmengine.logging import MMLogger

from vilref_mm.labeling.labeler import EYES

#: How many reasons a summary of skipped records quotes.
NUM_QUOTED_REASONS = 5
# Types a label value may have (bool is not a number here).
_NUMBER_TYPES = frozenset({int, float} | {np.dtype(code).type for code in 'efdbhilqBHILQ'})


class RecordError(ValueError):
    """A record that cannot be used.

    Args:
        where: The record: ``FILE:LINE`` or ``DIR/pairs #INDEX``.
        field: The offending field, or None when the record as a whole is bad.
        problem: What is wrong and what to do.
    """

    def __init__(self, where: str, field: Optional[str], problem: str):
        self.where, self.field, self.problem = where, field, problem
        subject = f"field '{field}' " if field else ''
        super().__init__(f'{where}: {subject}{problem}')


class BadRecords:
    """Raises bad records, or counts them and logs a summary when skipping them.

    Args:
        source: The manifest or LMDB the records come from (for the summary).
        skip: Skip bad records instead of raising.
    """

    def __init__(self, source: str, skip: bool):
        self.source, self.skip = source, skip
        self.errors: List[RecordError] = []

    def __call__(self, error: RecordError) -> None:
        """Raise ``error``, or remember it when skipping."""
        if not self.skip:
            raise RecordError(error.where, error.field,
                              f'{error.problem} (skip_bad_records=True skips bad records)')
        self.errors.append(error)

    def log_summary(self, num_kept: int) -> None:
        """Log how many records were skipped and the first reasons.

        Raises:
            ValueError: When no record is left.
        """
        if num_kept == 0:
            raise ValueError(f'{self.source}: no usable record ({len(self.errors)} bad records'
                             f'{self._quote()}); check the file')
        if self.errors:
            MMLogger.get_current_instance().warning(
                f'{self.source}: skipped {len(self.errors)} bad records, kept {num_kept}'
                f'{self._quote()}')

    def _quote(self) -> str:
        if not self.errors:
            return ''
        quoted = '; '.join(map(str, self.errors[:NUM_QUOTED_REASONS]))
        return f'; first {min(len(self.errors), NUM_QUOTED_REASONS)}: {quoted}'


def parse_manifest_line(line: bytes, where: str) -> Optional[dict]:
    """The record of one line of a JSON Lines manifest, with ``image``, ``report`` and ``eye``
    checked.

    The line is UTF-8 (a byte order mark is allowed) holding a JSON object with non-empty
    strings ``image`` and ``report`` and, optionally, ``eye`` ('left', 'right' or null). Other
    fields are returned unchecked.

    Args:
        line: The raw line.
        where: ``FILE:LINE``, for error messages.

    Returns:
        The record, or None for a blank line.

    Raises:
        RecordError: The line is not UTF-8 or JSON, or a checked field is bad.
    """
    try:
        text = line.decode('utf-8-sig')
    except UnicodeDecodeError as error:
        raise RecordError(where, None, f'is not UTF-8 text ({error.reason}); save the '
                          'manifest as UTF-8') from error
    if not text.strip():
        return None
    try:
        record = json.loads(text)
    except json.JSONDecodeError as error:
        raise RecordError(where, None, f'is not valid JSON ({error.msg}, column '
                          f'{error.colno}); fix or remove the line') from error
    if not isinstance(record, dict):
        raise RecordError(where, None, 'must be a JSON object with "image" and "report", '
                          f'got {type(record).__name__}')
    for field in ('image', 'report'):
        check_text(required_field(record, field, where), where, field)
    check_eye(record.get('eye'), where)
    return record


def required_field(record: Mapping[str, Any], field: str, where: str) -> Any:
    """``record[field]``, which must be present."""
    if field not in record:
        raise RecordError(where, field, 'is missing; every record needs "image" (the image '
                          'file) and "report" (the report text)')
    return record[field]


def check_text(value: Any, where: str, field: str) -> str:
    """``value`` as a non-empty string."""
    if not isinstance(value, str):
        raise RecordError(where, field, f'must be a string, got {type(value).__name__}')
    if not value.strip():
        raise RecordError(where, field, 'is empty; fill it in or drop the record')
    return value


def check_eye(value: Any, where: str) -> Optional[str]:
    """``value`` as 'left', 'right' or None."""
    if value is not None and value not in EYES:
        raise RecordError(where, 'eye', f"must be 'left', 'right' or null, got {value!r}")
    return value


def label_vector(value: Any, classes: Sequence[str], where: str, field: str) -> np.ndarray:
    """A label vector over ``classes`` from a mapping key -> value or a sequence in class order.

    Every value must be a number in [0, 1].
    """
    if isinstance(value, Mapping):
        if value.keys() != set(classes):
            missing = [key for key in classes if key not in value]
            unknown = [key for key in value if key not in classes]
            problem = (f'lacks the classes {missing[:5]}' if missing else
                       f'has keys that are not classes: {unknown[:5]}')
            raise RecordError(where, field, f'{problem}; its keys must be the dataset classes '
                              f'({", ".join(classes)}): relabel with the same lexicon, or set '
                              'metainfo=dict(classes=[...]) to the keys the labels use')
        value = list(map(value.__getitem__, classes))
    elif isinstance(value, np.ndarray):
        value = value.reshape(-1).tolist()
    elif not isinstance(value, (list, tuple)):
        raise RecordError(where, field, 'must be a mapping class -> value or a list in class '
                          f'order, got {type(value).__name__}')
    if len(value) != len(classes):
        raise RecordError(where, field, f'has {len(value)} values but the dataset has '
                          f'{len(classes)} classes; set metainfo=dict(classes=[...]) to the '
                          'classes the labels were made with')
    numeric = set(map(type, value)) <= _NUMBER_TYPES
    vector = np.asarray(value, dtype=np.float64) if numeric else None
    if vector is None or not (np.isfinite(vector) & (vector >= 0) & (vector <= 1)).all():
        bad = next(item for item, ok in zip(value, _in_unit_interval(value)) if not ok)
        raise RecordError(where, field, f'values must be numbers in [0, 1], got {bad!r}')
    return vector.astype(np.float32)


def _in_unit_interval(values: Sequence[Any]) -> Iterator[bool]:
    for item in values:
        yield type(item) in _NUMBER_TYPES and math.isfinite(item) and 0 <= item <= 1
