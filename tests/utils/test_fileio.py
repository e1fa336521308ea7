"""atomic_open / write_text_atomic: the destination is complete or untouched."""
import os
import stat

import pytest

from vilref_mm.utils import atomic_open, write_text_atomic


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
