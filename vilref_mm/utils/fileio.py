"""Atomic file writes: nothing half-written is left behind."""
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Iterable, Iterator, Optional, Union


@contextmanager
def atomic_open(path: Union[str, Path], mode: str = 'wb',
                encoding: Optional[str] = None) -> Iterator[IO]:
    """Open a temporary file next to ``path`` for writing; rename it to ``path`` when the
    block ends without an error, delete it otherwise. The folder is created if needed.

    Args:
        path (str | Path): The destination.
        mode (str): 'wb' or 'w'. Defaults to 'wb'.
        encoding (str, optional): For text mode.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(prefix=f'.{path.name}.', suffix='.tmp', dir=path.parent)
    try:
        # mkstemp makes the file private (0600); give it the permissions open() would.
        umask = os.umask(0)
        os.umask(umask)
        os.fchmod(fd, 0o666 & ~umask)
        with os.fdopen(fd, mode, encoding=encoding) as file:
            yield file
        os.replace(temp, path)
    except BaseException:
        os.unlink(temp)
        raise


def write_text_atomic(path: Union[str, Path], lines: Iterable[str]) -> None:
    """Write ``lines`` (each ending in a newline) to ``path`` as UTF-8, atomically."""
    with atomic_open(path, 'w', encoding='utf-8') as file:
        file.writelines(lines)
