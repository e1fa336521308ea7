"""mmpretrain's own tools/train.py (the one `mim train mmpretrain` runs) trains a ViLReF
pre-training config with ``runner_type='ViLReFRunner'``: a run stopped after its checkpoint of
iteration 3 and continued with ``--resume`` (the newest checkpoint of the work dir) logs the
uninterrupted run's losses and ends with its weights, momentum towers and queue.

The deterministic tiny config keeps it short; tests/tools/test_pretrain_resume.py resumes
with the recipe's randomness through tools/train.py."""
import json
import os
import subprocess
import sys
from pathlib import Path

import mmpretrain
import pytest
import torch

from vilref_mm.datasets.synthetic import generate_synthetic_fundus
from vilref_mm.utils.checkpoint import load_checkpoint_file

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / 'tests' / 'data' / 'configs' / 'tiny_vilref.py'
UPSTREAM_TRAIN = Path(mmpretrain.__file__).parent / '.mim' / 'tools' / 'train.py'


def _upstream_train(work_dir: Path, data_root: Path, *args: str, options: tuple = ()) -> str:
    """Run mmpretrain's tools/train.py on the tiny config (6 iterations, checkpoints at 3 and
    6) with our runner; its output."""
    env = {**os.environ, 'PYTHONPATH': f'{REPO}{os.pathsep}{os.environ.get("PYTHONPATH", "")}',
           'OMP_NUM_THREADS': '1'}
    options = ('runner_type=ViLReFRunner', *options,
               *(f'{split}_dataloader.dataset.data_root={data_root}/'
                 for split in ('train', 'val', 'test')))
    proc = subprocess.run([sys.executable, str(UPSTREAM_TRAIN), str(CONFIG), '--work-dir',
                           str(work_dir), *args, '--cfg-options', *options],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    return proc.stdout + proc.stderr


def _losses(run_dir: Path) -> dict:
    """The scalars logged at each iteration by one run (a timestamp folder of a work dir)."""
    records = [json.loads(line)
               for line in (run_dir / 'vis_data' / 'scalars.json').read_text().splitlines()]
    return {record['iter']: record for record in records if 'loss' in record}


def _runs(work_dir: Path) -> list:
    return sorted(path for path in work_dir.iterdir() if (path / 'vis_data').is_dir())


def test_upstream_train_resumes_exactly(tmp_path):
    data_root = tmp_path / 'data'
    generate_synthetic_fundus(data_root, num_train=24, num_val=8, num_test=8, size=64, seed=1)
    full = tmp_path / 'full'
    _upstream_train(full, data_root)
    uninterrupted = _losses(_runs(full)[0])
    assert sorted(uninterrupted) == [1, 2, 3, 4, 5, 6]

    work_dir = tmp_path / 'stopped'
    _upstream_train(work_dir, data_root, options=('train_cfg.max_iters=3', ))
    assert (work_dir / 'iter_3.pth').is_file() and not (work_dir / 'iter_6.pth').exists()
    output = _upstream_train(work_dir, data_root, '--resume')
    assert f'resuming from {work_dir / "iter_3.pth"}' in output
    stopped, resumed = map(_losses, _runs(work_dir))
    assert sorted(stopped) == [1, 2, 3] and sorted(resumed) == [4, 5, 6]
    for iteration in range(1, 7):
        run = stopped if iteration <= 3 else resumed
        for key in ('loss', 'queue_fill', 'logit_scale'):
            assert run[iteration][key] == pytest.approx(uninterrupted[iteration][key], rel=0,
                                                        abs=1e-6), (iteration, key)

    final = load_checkpoint_file(str(full / 'iter_6.pth'))['state_dict']
    again = load_checkpoint_file(str(work_dir / 'iter_6.pth'))['state_dict']
    assert final.keys() == again.keys()
    assert 'memory_queue.image_feats' in final and any(k.startswith('momentum_') for k in final)
    for key in final:
        torch.testing.assert_close(again[key], final[key], rtol=0, atol=1e-6, msg=key)
