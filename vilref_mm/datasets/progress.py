"""Progress bars of the long data work (labelling, LMDB building, synthetic generation).

MMEngine's :class:`~mmengine.utils.ProgressBar` on stderr, drawn by rank 0 only: by default
when stderr is a terminal, so logs, pipes and tests stay clean.
"""
import sys
import time
from typing import Iterable, Iterator, Optional, TypeVar

from mmengine.dist import get_rank
from mmengine.utils import ProgressBar

Item = TypeVar('Item')
#: Seconds between two redraws: redrawing for every report would slow labelling down by
#: about 40% (13 of 33 µs a report).
REDRAW_SECONDS = 0.1


def show_progress(progress: Optional[bool] = None) -> bool:
    """Whether to draw a bar: never on a rank other than 0; there, ``progress``, or (None)
    whether stderr is a terminal."""
    if get_rank() != 0:
        return False
    return sys.stderr.isatty() if progress is None else progress


def track_progress(items: Iterable[Item], total: int,
                   progress: Optional[bool] = None) -> Iterator[Item]:
    """The items of ``items``, with a bar that advances as each one is done.

    An item counts as done when the next one is asked for (or the loop ends), so the bar
    follows the work of the loop body. The bar ends with a line break, also when the loop is
    left early (an error message then starts on a line of its own).

    Args:
        items: What to iterate over.
        total: How many items there are (the bar's 100%).
        progress: Draw the bar (True), never (False) or when stderr is a terminal (None);
            only rank 0 draws.
    """
    if total <= 0 or not show_progress(progress):
        yield from items
        return
    bar = ProgressBar(total, file=sys.stderr)
    done, drawn_at = 0, time.monotonic()
    try:
        for item in items:
            yield item
            done += 1
            if time.monotonic() - drawn_at >= REDRAW_SECONDS:
                bar.update(done - bar.completed)
                drawn_at = time.monotonic()
    finally:
        if done > bar.completed:
            bar.update(done - bar.completed)
        bar.file.write('\n')
        bar.file.flush()
