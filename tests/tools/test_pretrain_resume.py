"""Pre-training through the runner with the randomness of the real recipe (dropout, drop
path, FLIP masks, random crop, flip and colour jitter, a dataloader worker): a run resumed
from a checkpoint continues exactly as the uninterrupted run, the same losses at every
iteration and the same final weights, momentum towers and queue included."""
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
CONFIGS = REPO / 'tests' / 'data' / 'configs'


@pytest.fixture(scope='module')
def synthetic_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp('synthetic')
    generate_synthetic_fundus(root, num_train=24, num_val=8, num_test=8, size=64, seed=1)
    return root


def _train(config: Path, work_dir: Path, data_root: Path, *extra: str,
           options: tuple = ()) -> None:
    env = {**os.environ, 'PYTHONPATH': f'{REPO}{os.pathsep}{os.environ.get("PYTHONPATH", "")}',
           'OMP_NUM_THREADS': '1'}
    options = (*options, *(f'{split}_dataloader.dataset.data_root={data_root}/'
                           for split in ('train', 'val', 'test')))
    proc = subprocess.run([sys.executable, 'tools/train.py', str(config), '--work-dir',
                           str(work_dir), *extra, '--cfg-options', *options],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]


def _losses(work_dir: Path) -> dict:
    records = [json.loads(line) for f in sorted(work_dir.glob('*/vis_data/scalars.json'))
               for line in f.read_text().splitlines()]
    return {r['iter']: r for r in records if 'loss' in r}


@pytest.mark.parametrize('config, options, checkpoint, resumed_iters', [
    # iterations, the sampler seeding each sample's augmentation
    ('tiny_vilref_random.py', (), 'iter_3.pth', [4, 5, 6]),
    # iterations, MMEngine's InfiniteSampler (the demo's)
    ('tiny_vilref_random.py', ('train_dataloader.sampler.type=InfiniteSampler', ),
     'iter_3.pth', [4, 5, 6]),
    # epochs, as the pre-training configs (SeededDefaultSampler)
    ('tiny_vilref_random_epochs.py', (), 'epoch_1.pth', [3, 4, 5, 6]),
], ids=['iter-seeded-sampler', 'iter-infinite-sampler', 'epoch-seeded-sampler'])
def test_resume_continues_exactly(tmp_path, synthetic_root, config, options, checkpoint,
                                  resumed_iters):
    full = tmp_path / 'full'
    _train(CONFIGS / config, full, synthetic_root, options=options)
    uninterrupted = _losses(full)
    assert sorted(uninterrupted) == [1, 2, 3, 4, 5, 6]
    # The queue (16 entries) fills with the batch of 4 each iteration.
    assert [uninterrupted[i]['queue_fill'] for i in range(1, 7)] == [
        0.0, 0.25, 0.5, 0.75, 1.0, 1.0]

    resumed_dir = tmp_path / 'resumed'
    _train(CONFIGS / config, resumed_dir, synthetic_root, '--resume', str(full / checkpoint),
           options=options)
    resumed = _losses(resumed_dir)
    assert sorted(resumed) == resumed_iters
    for iteration in resumed_iters:
        for key in ('loss', 'queue_fill', 'eliminated', 'logit_scale'):
            assert resumed[iteration][key] == pytest.approx(uninterrupted[iteration][key],
                                                            rel=0, abs=1e-6), (iteration, key)

    last = 'epoch_3.pth' if checkpoint.startswith('epoch') else 'iter_6.pth'
    final = load_checkpoint_file(str(full / last))['state_dict']
    again = load_checkpoint_file(str(resumed_dir / last))['state_dict']
    assert final.keys() == again.keys()
    assert any(key.startswith('momentum_') for key in final)
    assert 'memory_queue.image_feats' in final and int(final['memory_queue.num_filled']) == 16
    for key in final:
        torch.testing.assert_close(again[key], final[key], rtol=0, atol=1e-6, msg=key)
