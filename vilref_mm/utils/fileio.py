"""Atomic, durable file writes: nothing half-written is left behind, and what a killed writer
left is cleaned by the next one.

Every temporary sits next to its destination as ``.<name>.<pid>.<random>`` (files end in
``.tmp``), so the next writer of the same destination can tell debris (its writer process is
gone) from a write in progress. Writers are assumed to run on this machine.
"""
import os
import re
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Iterable, Iterator, List, Optional, Union


def temporary_prefix(path: Union[str, Path]) -> str:
    """The name prefix of this process's temporaries for ``path``: ``.<name>.<pid>.``."""
    return f'.{Path(path).name}.{os.getpid()}.'


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def remove_stale_temporaries(path: Union[str, Path]) -> List[Path]:
    """Remove the temporaries of ``path`` whose writer process no longer runs (a killed
    :func:`atomic_open`, checkpoint save or LMDB build).

    Args:
        path (str | Path): The destination whose debris to remove.

    Returns:
        list[Path]: The files and folders removed.
    """
    path = Path(path)
    if not path.parent.is_dir():
        return []
    pattern = re.compile(rf'\.{re.escape(path.name)}\.(\d+)\.')
    removed = []
    for entry in path.parent.iterdir():
        match = pattern.match(entry.name)
        if match is None or _process_alive(int(match.group(1))):
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)
        removed.append(entry)
    return removed


def fsync_folder(folder: Union[str, Path]) -> None:
    """Make a rename or removal in ``folder`` durable (POSIX; a no-op where folders cannot be
    opened)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def replace_durably(source: Union[str, Path], destination: Union[str, Path]) -> None:
    """Flush the complete file ``source`` to disk, then rename it to ``destination``."""
    with open(source, 'rb+') as file:
        os.fsync(file.fileno())
    os.replace(source, destination)
    fsync_folder(Path(destination).parent)


@contextmanager
def atomic_open(path: Union[str, Path], mode: str = 'wb',
                encoding: Optional[str] = None) -> Iterator[IO]:
    """Open a temporary file next to ``path`` for writing; when the block ends without an
    error, flush it to disk and rename it to ``path``, else delete it. The folder is created
    if needed, and temporaries of ``path`` left by killed writers are removed first.

    Args:
        path (str | Path): The destination.
        mode (str): 'wb' or 'w'. Defaults to 'wb'.
        encoding (str, optional): For text mode.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(path)
    fd, temp = tempfile.mkstemp(prefix=temporary_prefix(path), suffix='.tmp', dir=path.parent)
    try:
        # mkstemp makes the file private (0600); give it the permissions open() would.
        umask = os.umask(0)
        os.umask(umask)
        os.fchmod(fd, 0o666 & ~umask)
        with os.fdopen(fd, mode, encoding=encoding) as file:
            yield file
            file.flush()
            os.fsync(file.fileno())
        os.replace(temp, path)
        fsync_folder(path.parent)
    except BaseException:
        os.unlink(temp)
        raise


def write_text_atomic(path: Union[str, Path], lines: Iterable[str]) -> None:
    """Write ``lines`` (each ending in a newline) to ``path`` as UTF-8, atomically."""
    with atomic_open(path, 'w', encoding='utf-8') as file:
        file.writelines(lines)
