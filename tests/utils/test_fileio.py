"""atomic_open / write_text_atomic: the destination is complete or untouched."""
import os
import stat
import subprocess
import sys

import pytest

from vilref_mm.utils import atomic_open, write_text_atomic
from vilref_mm.utils.fileio import remove_stale_temporaries


def test_writes_and_creates_the_folder(tmp_path):
    path = tmp_path / 'new' / 'labels.txt'
    write_text_atomic(path, ['视盘水肿\n', 'normal\n'])
    assert path.read_text(encoding='utf-8') == '视盘水肿\nnormal\n'
    assert [p.name for p in path.parent.iterdir()] == ['labels.txt']


def test_an_error_leaves_the_old_file_and_no_temporary(tmp_path):
    path = tmp_path / 'features.npy'
    path.write_bytes(b'old')
    with pytest.raises(RuntimeError, match='interrupted'):
        with atomic_open(path) as file:
            file.write(b'half')
            raise RuntimeError('interrupted')
    assert path.read_bytes() == b'old'
    assert [p.name for p in tmp_path.iterdir()] == ['features.npy']


def test_written_files_get_the_usual_permissions(tmp_path):
    """As open() would create them (0666 less the umask), not private like mkstemp's 0600."""
    path = tmp_path / 'shared.txt'
    old_umask = os.umask(0o022)
    try:
        write_text_atomic(path, ['x\n'])
    finally:
        os.umask(old_umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644


def dead_pid() -> int:
    """The pid of a process that has ended."""
    proc = subprocess.Popen([sys.executable, '-c', 'pass'])
    proc.wait()
    return proc.pid


def test_stale_temporaries_of_dead_writers_are_removed(tmp_path):
    """What a killed writer left (files and folders) goes; a live writer's and other
    destinations' temporaries stay."""
    path = tmp_path / 'train.jsonl'
    dead = dead_pid()
    stale_file = tmp_path / f'.train.jsonl.{dead}.abc123.tmp'
    stale_dir = tmp_path / f'.train.jsonl.{dead}.ff00'
    live = tmp_path / f'.train.jsonl.{os.getpid()}.def456.tmp'
    other = tmp_path / f'.val.jsonl.{dead}.abc123.tmp'
    for file in (stale_file, live, other):
        file.write_text('half')
    (stale_dir / 'pairs').mkdir(parents=True)
    assert sorted(remove_stale_temporaries(path)) == sorted([stale_file, stale_dir])
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([live.name, other.name])
    write_text_atomic(tmp_path / 'val.jsonl', ['x\n'])  # each write cleans its destination
    assert not other.exists() and live.exists()
