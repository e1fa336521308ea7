"""Pre-training through the runner: resuming mid-training restores momentum towers and queue
exactly, and the resumed run continues with the same losses as an uninterrupted one."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from vilref_mm.datasets.synthetic import generate_synthetic_fundus
from vilref_mm.utils.checkpoint import load_checkpoint_file

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / 'tests' / 'data' / 'configs' / 'tiny_vilref.py'


@pytest.fixture(scope='module')
def synthetic_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp('synthetic')
    generate_synthetic_fundus(root, num_train=24, num_val=8, num_test=8, size=64, seed=1)
    return root


def _train(work_dir: Path, data_root: Path, *extra: str) -> None:
    env = {**os.environ, 'PYTHONPATH': f'{REPO}{os.pathsep}{os.environ.get("PYTHONPATH", "")}',
           'OMP_NUM_THREADS': '1'}
    options = [f'{split}_dataloader.dataset.data_root={data_root}/'
               for split in ('train', 'val', 'test')]
    proc = subprocess.run([sys.executable, 'tools/train.py', str(CONFIG), '--work-dir',
                           str(work_dir), *extra, '--cfg-options', *options],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]


def _losses(work_dir: Path) -> dict:
    records = [json.loads(line) for f in sorted(work_dir.glob('*/vis_data/scalars.json'))
               for line in f.read_text().splitlines()]
    return {r['iter']: r for r in records if 'loss' in r}


def test_resume_continues_exactly(tmp_path, synthetic_root):
    full = tmp_path / 'full'
    _train(full, synthetic_root)
    uninterrupted = _losses(full)
    assert sorted(uninterrupted) == [1, 2, 3, 4, 5, 6]
    # The queue fills with the global batch each iteration (4 per step, 16 slots).
    assert [uninterrupted[i]['queue_fill'] for i in (1, 2, 3, 4, 5, 6)] == [
        0.0, 0.25, 0.5, 0.75, 1.0, 1.0]

    resumed_dir = tmp_path / 'resumed'
    _train(resumed_dir, synthetic_root, '--resume', str(full / 'iter_3.pth'))
    resumed = _losses(resumed_dir)
    assert sorted(resumed) == [4, 5, 6]
    for iteration in (4, 5, 6):
        for key in ('loss', 'queue_fill', 'eliminated', 'logit_scale'):
            assert resumed[iteration][key] == pytest.approx(uninterrupted[iteration][key],
                                                            rel=1e-5), (iteration, key)

    final = load_checkpoint_file(str(full / 'iter_6.pth'))['state_dict']
    again = load_checkpoint_file(str(resumed_dir / 'iter_6.pth'))['state_dict']
    assert final.keys() == again.keys()
    assert any(key.startswith('momentum_') for key in final)
    assert 'memory_queue.image_feats' in final and int(final['memory_queue.num_filled']) == 16
    for key in final:
        torch.testing.assert_close(again[key], final[key], rtol=1e-5, atol=1e-6, msg=key)
