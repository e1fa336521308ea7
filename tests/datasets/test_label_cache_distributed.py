"""Labelling under torch.distributed: rank 0 labels and writes the cache, the others read it."""
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from mmengine.logging import MMLogger

from vilref_mm.datasets import label_cache
from vilref_mm.datasets.label_cache import report_labels
from vilref_mm.labeling import ReportLabeler, load_lexicon

WORKER = Path(__file__).with_name('_label_cache_dist_worker.py')
REPO_ROOT = Path(__file__).resolve().parents[2]
WORLD_SIZE = 2
TIMEOUT_S = 300
REPORTS = [('右眼视网膜出血，黄斑水肿。左眼眼底未见明显异常', 'right'),
           ('考虑青光眼，C/D 0.7', None),
           ('双眼视盘边界清，色淡红，视网膜未见出血及渗出', None),
           ('右眼视网膜出血，黄斑水肿。左眼眼底未见明显异常', 'left'),
           ('左眼可见散在微血管瘤及硬性渗出，考虑糖尿病视网膜病变', 'left')]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def run_ranks(manifest: Path, out_dir: Path) -> list:
    """Run the worker as WORLD_SIZE gloo ranks; each rank's (stdout, stderr)."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        filter(None, [str(REPO_ROOT), os.environ.get('PYTHONPATH')])))
    port = free_port()
    ranks = [subprocess.Popen([sys.executable, str(WORKER), str(manifest), str(out_dir),
                               '--rank', str(rank), '--world-size', str(WORLD_SIZE),
                               '--port', str(port)],
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for rank in range(WORLD_SIZE)]
    try:
        outputs = [rank.communicate(timeout=TIMEOUT_S) for rank in ranks]
    finally:
        for rank in ranks:
            if rank.poll() is None:
                rank.kill()
                rank.wait()
    for rank, (out, err) in zip(ranks, outputs):
        assert rank.returncode == 0, (out + err)[-4000:]
    return outputs


def test_rank_0_labels_and_caches_the_other_ranks_read_the_cache(tmp_path):
    manifest = tmp_path / 'train.jsonl'
    manifest.write_text(''.join(
        json.dumps({'image': f'{index}.png', 'report': report, 'eye': eye},
                   ensure_ascii=False) + '\n' for index, (report, eye) in enumerate(REPORTS)),
                        encoding='utf-8')
    outputs = run_ranks(manifest, tmp_path)

    results = [np.load(tmp_path / f'rank{rank}.npz') for rank in range(WORLD_SIZE)]
    assert [int(result['calls']) for result in results] == [len(REPORTS), 0]
    # Each rank passed one barrier, after which the cache was there.
    assert [result['cache_after_barrier'].tolist() for result in results] == [[True], [True]]
    labeler = ReportLabeler()
    expected = np.stack([labeler(report, eye) for report, eye in REPORTS])
    assert expected.any()
    for result in results:
        np.testing.assert_array_equal(result['labels'], expected)
    caches = list(tmp_path.glob('train.jsonl.labels-*.npy'))
    assert len(caches) == 1
    np.testing.assert_array_equal(np.load(caches[0]), expected)
    # Every rank asked for a bar; rank 0 alone drew one.
    assert f'{len(REPORTS)}/{len(REPORTS)}' in outputs[0][1]
    assert f'/{len(REPORTS)}' not in outputs[1][1]


@pytest.fixture
def rank(monkeypatch):
    """Pretend to run under torch.distributed as the rank the test sets; the barriers passed."""
    barriers = []
    monkeypatch.setattr(label_cache, 'is_distributed', lambda: True)
    monkeypatch.setattr(label_cache, 'barrier', lambda: barriers.append(True))

    def set_rank(number: int) -> list:
        monkeypatch.setattr(label_cache, 'get_rank', lambda: number)
        return barriers

    return set_rank


def test_a_rank_that_finds_no_cache_after_the_barrier_labels_on_its_own(tmp_path, rank,
                                                                         monkeypatch):
    barriers = rank(1)
    warnings = []
    monkeypatch.setattr(MMLogger.get_current_instance(), 'warning', warnings.append)
    labels = report_labels(REPORTS, load_lexicon(None), tmp_path / 'train.jsonl')
    assert barriers == [True]
    labeler = ReportLabeler()
    np.testing.assert_array_equal(labels, [labeler(report, eye) for report, eye in REPORTS])
    (warning, ) = warnings
    assert 'rank 1 finds no label cache' in warning and str(tmp_path) in warning


class FailingLabeler(ReportLabeler):

    def __call__(self, report, eye=None):
        raise RuntimeError('labelling failed')


def test_rank_0_releases_the_other_ranks_when_labelling_fails(tmp_path, rank, monkeypatch):
    barriers = rank(0)
    monkeypatch.setattr(label_cache, 'ReportLabeler', FailingLabeler)
    with pytest.raises(RuntimeError, match='labelling failed'):
        report_labels(REPORTS, load_lexicon(None), tmp_path / 'train.jsonl')
    assert barriers == [True]


def test_without_a_cache_every_rank_labels_and_none_waits(rank):
    barriers = rank(1)
    lexicon = load_lexicon(None)
    assert report_labels(REPORTS, lexicon).shape == (len(REPORTS), len(lexicon.classes))
    assert barriers == []
