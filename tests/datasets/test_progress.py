"""The progress bars of the data work: drawn when asked or on a terminal, by rank 0 only."""
import io

import pytest

from vilref_mm.datasets import progress as progress_module
from vilref_mm.datasets.progress import show_progress, track_progress


class Terminal(io.StringIO):
    """A stderr that says it is a terminal."""

    def isatty(self) -> bool:
        return True


def test_a_forced_bar_counts_every_item_and_ends_its_line(capsys):
    assert list(track_progress(iter('abcde'), 5, progress=True)) == list('abcde')
    captured = capsys.readouterr()
    assert captured.out == ''
    assert captured.err.startswith('[') and '0/5' in captured.err
    assert '5/5' in captured.err.split('\r')[-1], 'the last drawing counts every item'
    assert captured.err.endswith('\n') and captured.err.count('\n') == 1


@pytest.mark.parametrize('progress', [False, None])
def test_quiet_when_asked_or_when_stderr_is_no_terminal(capsys, progress):
    assert list(track_progress(range(3), 3, progress)) == [0, 1, 2]
    assert capsys.readouterr().err == ''


def test_by_default_a_terminal_gets_a_bar(monkeypatch):
    terminal = Terminal()
    monkeypatch.setattr('sys.stderr', terminal)
    assert show_progress(None)
    assert list(track_progress(range(3), 3)) == [0, 1, 2]
    assert '3/3' in terminal.getvalue()
    assert list(track_progress(range(3), 3, progress=False)) == [0, 1, 2]
    assert terminal.getvalue().count('3/3') == 1


def test_only_rank_0_draws(monkeypatch):
    terminal = Terminal()
    monkeypatch.setattr('sys.stderr', terminal)
    monkeypatch.setattr(progress_module, 'get_rank', lambda: 1)
    assert not show_progress(True)
    assert list(track_progress(range(3), 3, progress=True)) == [0, 1, 2]
    assert terminal.getvalue() == ''


def test_no_bar_for_no_items(capsys):
    assert list(track_progress([], 0, progress=True)) == []
    assert capsys.readouterr().err == ''


def test_a_loop_left_by_an_error_shows_what_was_done_and_ends_the_line(capsys):
    with pytest.raises(ValueError, match='third'):
        for item in track_progress(range(5), 5, progress=True):
            if item == 2:
                raise ValueError('third')
    err = capsys.readouterr().err
    assert '2/5' in err and '3/5' not in err and err.endswith('\n')
