"""Pre-training through MMEngine's FlexibleRunner (ViLReFFlexibleRunner) with ``ViLReFDDPStrategy``
(``configs/_base_/strategies/ddp.py``): ``tools/dist_train.sh <demo config> 2`` (2 gloo ranks
on CPU, batch B each) trains, logs and checkpoints like ``tools/train.py`` under
ViLReFRunner with batch 2B (the momentum towers and the memory queue included), and a run
resumed from its checkpoint continues with the same losses and ends with the same weights.

The runs are those of test_dist_pretrain.py (its config, launch and log reading), whose module
docstring says why the two runs agree."""
import sys

import pytest
import torch
from tool_modules import REPO, load_module

from vilref_mm.utils.checkpoint import load_checkpoint_file

DIST = load_module('tests/tools/test_dist_pretrain.py', 'dist_pretrain_runs')
STRATEGY = REPO / 'configs/_base_/strategies/ddp.py'
WORLD_SIZE, BATCH = DIST.WORLD_SIZE, DIST.BATCH
ITERS = 4
RESUMED_FROM = 2  # the resumed run starts from the checkpoint of this iteration


def _state_dict(work_dir, iteration: int = ITERS) -> dict:
    return load_checkpoint_file(str(work_dir / f'iter_{iteration}.pth'))['state_dict']


@pytest.fixture(scope='module')
def runs(tmp_path_factory):
    """The work dirs of the 2-rank FlexibleRunner run (batch B each), the 1-process
    ViLReFRunner run (batch 2B) and the 2-rank run resumed from the first one's checkpoint of
    iteration :data:`RESUMED_FROM`."""
    root = tmp_path_factory.mktemp('flexible_pretrain')
    DIST.generate_synthetic_fundus(root / 'data', num_train=16, num_val=0, num_test=0,
                                   size=112, seed=1)
    single_config = root / 'deterministic_demo.py'
    single_config.write_text(DIST.DETERMINISTIC_DEMO)
    flexible_config = root / 'deterministic_demo_ddp.py'
    flexible_config.write_text(f'_base_ = [{str(single_config)!r}, {str(STRATEGY)!r}]\n'
                               "runner_type = 'ViLReFFlexibleRunner'\n")
    options = [f'train_dataloader.dataset.data_root={root / "data"}/',
               f'train_cfg.max_iters={ITERS}', 'randomness.seed=0',
               'default_hooks.logger.interval=1', 'log_processor.window_size=1',
               f'default_hooks.checkpoint.interval={RESUMED_FROM}',
               'default_hooks.checkpoint.max_keep_ckpts=-1']
    flexible, single, resumed = root / 'flexible', root / 'single', root / 'resumed'

    def dist_train(work_dir, *args):
        DIST._run(['bash', 'tools/dist_train.sh', str(flexible_config), str(WORLD_SIZE),
                   '--work-dir', str(work_dir), '--no-validate', *args, '--cfg-options',
                   *options, f'train_dataloader.batch_size={BATCH}'],
                  PORT=str(DIST._free_port()))

    dist_train(flexible)
    DIST._run([sys.executable, 'tools/train.py', str(single_config), '--work-dir', str(single),
               '--no-validate', '--cfg-options', *options,
               f'train_dataloader.batch_size={WORLD_SIZE * BATCH}'])
    dist_train(resumed, '--resume', str(flexible / f'iter_{RESUMED_FROM}.pth'))
    return flexible, single, resumed


def test_logged_losses_match_one_process(runs):
    flexible, single, _ = map(DIST._scalars, runs)
    assert sorted(flexible) == sorted(single) == list(range(1, ITERS + 1))
    for iteration in single:
        for key in ('loss', 'eliminated', 'logit_scale', 'queue_fill'):
            assert flexible[iteration][key] == pytest.approx(
                single[iteration][key], rel=1e-4), (iteration, key)


def test_trained_weights_match_one_process(runs):
    flexible, single = map(_state_dict, runs[:2])
    # ViLReFRunner's keys (no DDP prefix); the queue holds every rank's momentum features.
    assert flexible.keys() == single.keys()
    assert int(flexible['memory_queue.num_filled']) == ITERS * WORLD_SIZE * BATCH
    weights = [key for key in single if not key.startswith('memory_queue.')]
    assert any(key.startswith('momentum_') for key in weights)
    for key in weights:
        torch.testing.assert_close(flexible[key], single[key], rtol=1e-4, atol=1e-6, msg=key)


def test_every_rank_holds_the_same_queue(runs):
    flexible, _, _ = runs
    queues = [torch.load(flexible / f'queue_rank{rank}.pth', weights_only=True)
              for rank in range(WORLD_SIZE)]
    assert int(queues[0]['num_filled']) == ITERS * WORLD_SIZE * BATCH
    for key in queues[0]:
        assert torch.equal(queues[1][key], queues[0][key]), key


def test_resumed_run_continues_exactly(runs):
    flexible, _, resumed = runs
    uninterrupted, continued = DIST._scalars(flexible), DIST._scalars(resumed)
    assert sorted(continued) == list(range(RESUMED_FROM + 1, ITERS + 1))
    for iteration in continued:
        for key in ('loss', 'eliminated', 'logit_scale', 'queue_fill', 'lr'):
            assert continued[iteration][key] == pytest.approx(
                uninterrupted[iteration][key], rel=1e-4), (iteration, key)
    expected, actual = _state_dict(flexible), _state_dict(resumed)
    assert actual.keys() == expected.keys()
    for key in expected:
        torch.testing.assert_close(actual[key], expected[key], rtol=1e-4, atol=1e-6, msg=key)
