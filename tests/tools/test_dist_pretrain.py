"""Distributed pre-training through the whole runner: ``tools/dist_train.sh <demo config> 2``
(2 gloo ranks on CPU, batch B each) trains and logs like ``tools/train.py`` with batch 2B, and
leaves the same memory queue on every rank.

The global batch is the same set of samples in both runs (InfiniteSampler: one seeded
permutation, rank r takes every other index), and WSCL over a global batch does not depend on
its order (method.md, distributed semantics). Each rank draws its own random streams
(``diff_rank_seed``), so the towers are made deterministic by config (no dropout, no FLIP
masks); the augmentation stays random: SeededInfiniteSampler seeds each sample's transforms
from its position in the global stream, which is the same in both runs. So the losses, the
logged statistics and the trained weights agree."""
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from mmengine.config import Config

from vilref_mm.datasets.synthetic import generate_synthetic_fundus
from vilref_mm.utils.checkpoint import load_checkpoint_file

REPO = Path(__file__).resolve().parents[2]
DEMO_CONFIG = REPO / 'configs/vilref/vilref_vit-tiny-p16_1xb32-450it_synthetic-112px.py'
WORLD_SIZE = 2
BATCH = 4  # per rank
ITERS = 3  # 24 samples out of 16: the third batch crosses the sampler's epoch boundary
# The demo config with deterministic towers (no dropout of any kind, no FLIP masks), its random
# augmentation seeded per sample, the queue from the first iteration, and every rank's queue
# saved after training (rank_queue_hook.py).
DETERMINISTIC_DEMO = f"""_base_ = [{str(DEMO_CONFIG)!r}]
custom_imports = dict(imports=['vilref_mm', 'rank_queue_hook'], allow_failed_imports=False)
model = dict(
    image_encoder=dict(mask_ratio=0., drop_path_rate=0., drop_rate=0.),
    text_encoder=dict(
        bert_cfg=dict(hidden_dropout_prob=0., attention_probs_dropout_prob=0.)))
train_dataloader = dict(
    num_workers=0, persistent_workers=False, sampler=dict(type='SeededInfiniteSampler'))
# the queue from the first iteration (the demo's warm-up is longer than this run)
custom_hooks = [
    dict(type='MomentumUpdateHook', momentum=0.99),
    dict(type='MemoryQueueHook', warmup_iters=0),
    dict(type='LogitScaleClampHook'),
    dict(type='SaveRankQueueHook'),
]
"""


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def _run(command: list, **env: str) -> None:
    path = os.pathsep.join([str(REPO), str(REPO / 'tests' / 'data' / 'configs'),
                            os.environ.get('PYTHONPATH', '')])
    env = {**os.environ, 'PYTHONPATH': path, 'OMP_NUM_THREADS': '1', **env}
    proc = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]


def _scalars(work_dir: Path) -> dict:
    """The logged training scalars of each iteration (rank 0 writes them)."""
    files = sorted(work_dir.glob('*/vis_data/scalars.json'))
    assert len(files) == 1, files
    records = [json.loads(line) for line in files[0].read_text().splitlines()]
    return {r['iter']: r for r in records if 'loss' in r}


@pytest.fixture(scope='module')
def runs(tmp_path_factory):
    """The work dirs of the 2-rank run (batch B each) and the 1-process run (batch 2B)."""
    root = tmp_path_factory.mktemp('dist_pretrain')
    generate_synthetic_fundus(root / 'data', num_train=16, num_val=0, num_test=0, size=112,
                              seed=1)
    config = root / 'deterministic_demo.py'
    config.write_text(DETERMINISTIC_DEMO)
    options = [f'train_dataloader.dataset.data_root={root / "data"}/',
               f'train_cfg.max_iters={ITERS}', 'randomness.seed=0',
               'default_hooks.logger.interval=1', 'log_processor.window_size=1',
               f'default_hooks.checkpoint.interval={ITERS}']
    distributed, single = root / 'distributed', root / 'single'
    _run(['bash', 'tools/dist_train.sh', str(config), str(WORLD_SIZE), '--work-dir',
          str(distributed), '--no-validate', '--cfg-options', *options,
          f'train_dataloader.batch_size={BATCH}'], PORT=str(_free_port()))
    _run([sys.executable, 'tools/train.py', str(config), '--work-dir', str(single),
          '--no-validate', '--cfg-options', *options,
          f'train_dataloader.batch_size={WORLD_SIZE * BATCH}'])
    return distributed, single


def test_logged_losses_match_one_process(runs):
    distributed, single = map(_scalars, runs)
    assert sorted(distributed) == sorted(single) == list(range(1, ITERS + 1))
    # Both ranks' momentum features reach the queue: it grows by the global batch.
    queue_size = Config.fromfile(DEMO_CONFIG).model.queue_size
    assert distributed[2]['queue_fill'] == pytest.approx(WORLD_SIZE * BATCH / queue_size)
    for iteration in single:
        for key in ('loss', 'eliminated', 'logit_scale', 'queue_fill'):
            assert distributed[iteration][key] == pytest.approx(
                single[iteration][key], rel=1e-4), (iteration, key)


def test_trained_weights_match_one_process(runs):
    distributed, single = (load_checkpoint_file(str(work_dir / f'iter_{ITERS}.pth'))[
        'state_dict'] for work_dir in runs)
    assert distributed.keys() == single.keys()
    assert int(distributed['memory_queue.num_filled']) == ITERS * WORLD_SIZE * BATCH
    # The queue holds the same entries in another order; everything else is equal.
    weights = [key for key in single if not key.startswith('memory_queue.')]
    assert any(key.startswith('momentum_') for key in weights)
    for key in weights:
        torch.testing.assert_close(distributed[key], single[key], rtol=1e-4, atol=1e-6,
                                   msg=key)


def test_every_rank_holds_the_same_queue(runs):
    distributed, _ = runs
    queues = [torch.load(distributed / f'queue_rank{rank}.pth', weights_only=True)
              for rank in range(WORLD_SIZE)]
    assert int(queues[0]['num_filled']) == ITERS * WORLD_SIZE * BATCH
    assert queues[0]['image_feats'][:ITERS * WORLD_SIZE * BATCH].abs().sum() > 0
    for queue in queues[1:]:
        assert queue.keys() == queues[0].keys()
        for key in queue:
            assert torch.equal(queue[key], queues[0][key]), key
