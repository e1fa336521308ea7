"""Pre-training through MMEngine's FlexibleRunner (ViLReFFlexibleRunner) with each of its
strategies that runs on CPU: ``configs/_base_/strategies/ddp.py`` (ViLReFDDPStrategy),
``fsdp.py`` (ViLReFFSDPStrategy, FULL_SHARD) and ``fsdp_shard-grad-op.py`` (SHARD_GRAD_OP).
``tools/dist_train.sh <demo config> 2`` (2 gloo ranks on CPU, batch B each) trains, logs and
checkpoints like ``tools/train.py`` under ViLReFRunner with batch 2B (the momentum towers,
their EMA over sharded parameters and the memory queue included), and ``--resume`` in a work
dir whose newest checkpoint is truncated continues from the newest complete one with the
same losses and ends with the same weights. With the recipe's randomness (dropout, FLIP masks,
augmentation), a resumed FULL_SHARD run continues every rank's random streams; with gradient
accumulation a FULL_SHARD run ends as one process accumulating alike; and one started from a
checkpoint without momentum towers builds them from the loaded towers.

The runs are those of test_dist_pretrain.py (its config, launch and log reading), whose module
docstring says why the two runs agree."""
import shutil
import sys

import pytest
import torch
from tool_modules import REPO, load_module

from vilref_mm.utils.checkpoint import load_checkpoint_file

DIST = load_module('tests/tools/test_dist_pretrain.py', 'dist_pretrain_runs')
STRATEGIES = ('ddp', 'fsdp', 'fsdp_shard-grad-op')
WORLD_SIZE, BATCH = DIST.WORLD_SIZE, DIST.BATCH
ITERS = 4
RESUMED_FROM = 2  # the resumed run starts from the checkpoint of this iteration


def _checkpoint(work_dir, iteration: int = ITERS) -> dict:
    return load_checkpoint_file(str(work_dir / f'iter_{iteration}.pth'))


@pytest.fixture(scope='module')
def single_run(tmp_path_factory):
    """The data, the deterministic demo config, the options of every run and the work dir of
    the 1-process ViLReFRunner run (batch 2B)."""
    root = tmp_path_factory.mktemp('flexible_pretrain')
    DIST.generate_synthetic_fundus(root / 'data', num_train=16, num_val=0, num_test=0,
                                   size=112, seed=1)
    config = root / 'deterministic_demo.py'
    config.write_text(DIST.DETERMINISTIC_DEMO)
    options = [f'train_dataloader.dataset.data_root={root / "data"}/',
               f'train_cfg.max_iters={ITERS}', 'randomness.seed=0',
               'default_hooks.logger.interval=1', 'log_processor.window_size=1',
               f'default_hooks.checkpoint.interval={RESUMED_FROM}',
               'default_hooks.checkpoint.max_keep_ckpts=-1']
    single = root / 'single'
    DIST._run([sys.executable, 'tools/train.py', str(config), '--work-dir', str(single),
               '--no-validate', '--cfg-options', *options,
               f'train_dataloader.batch_size={WORLD_SIZE * BATCH}'])
    return config, options, single


@pytest.fixture(scope='module', params=STRATEGIES)
def runs(request, single_run, tmp_path_factory):
    """The work dirs of the 2-rank FlexibleRunner run (batch B each) under one strategy, the
    1-process run, and the 2-rank run resumed (``--resume``) in a work dir holding the first
    run's checkpoint of iteration :data:`RESUMED_FROM`, a truncated checkpoint of iteration
    :data:`ITERS` and a ``last_checkpoint`` naming it."""
    single_config, options, single = single_run
    root = tmp_path_factory.mktemp(request.param)
    config = root / f'deterministic_demo_{request.param}.py'
    strategy = REPO / f'configs/_base_/strategies/{request.param}.py'
    config.write_text(f'_base_ = [{str(single_config)!r}, {str(strategy)!r}]\n'
                      "runner_type = 'ViLReFFlexibleRunner'\n")
    flexible, resumed = root / 'flexible', root / 'resumed'

    def dist_train(work_dir, *args):
        DIST._run(['bash', 'tools/dist_train.sh', str(config), str(WORLD_SIZE),
                   '--work-dir', str(work_dir), '--no-validate', *args, '--cfg-options',
                   *options, f'train_dataloader.batch_size={BATCH}'],
                  PORT=str(DIST._free_port()))

    dist_train(flexible)
    resumed.mkdir()
    shutil.copy2(flexible / f'iter_{RESUMED_FROM}.pth', resumed)
    newest = (flexible / f'iter_{ITERS}.pth').read_bytes()
    (resumed / f'iter_{ITERS}.pth').write_bytes(newest[:len(newest) // 2])
    (resumed / 'last_checkpoint').write_text(str(resumed / f'iter_{ITERS}.pth'))
    dist_train(resumed, '--resume')
    return flexible, single, resumed


def test_logged_losses_match_one_process(runs):
    flexible, single, _ = map(DIST._scalars, runs)
    assert sorted(flexible) == sorted(single) == list(range(1, ITERS + 1))
    for iteration in single:
        for key in ('loss', 'eliminated', 'logit_scale', 'queue_fill'):
            assert flexible[iteration][key] == pytest.approx(
                single[iteration][key], rel=1e-4), (iteration, key)


def test_trained_weights_match_one_process(runs):
    flexible, single = (_checkpoint(work_dir)['state_dict'] for work_dir in runs[:2])
    # ViLReFRunner's keys and shapes (no DDP prefix, a 0-d logit_scale also under FSDP); the
    # queue holds every rank's momentum features.
    assert flexible.keys() == single.keys()
    assert flexible['logit_scale'].shape == torch.Size([])
    assert int(flexible['memory_queue.num_filled']) == ITERS * WORLD_SIZE * BATCH
    weights = [key for key in single if not key.startswith('memory_queue.')]
    assert any(key.startswith('momentum_') for key in weights)
    for key in weights:
        torch.testing.assert_close(flexible[key], single[key], rtol=1e-4, atol=1e-6, msg=key)


def test_checkpoints_hold_every_rank_random_state(runs):
    states = _checkpoint(runs[0])['meta']['random_states']
    assert len(states) == WORLD_SIZE
    assert not torch.equal(states[0]['torch'], states[1]['torch'])  # diff_rank_seed


def test_every_rank_holds_the_same_queue(runs):
    flexible, _, _ = runs
    queues = [torch.load(flexible / f'queue_rank{rank}.pth', weights_only=True)
              for rank in range(WORLD_SIZE)]
    assert int(queues[0]['num_filled']) == ITERS * WORLD_SIZE * BATCH
    for key in queues[0]:
        assert torch.equal(queues[1][key], queues[0][key]), key


def test_resume_continues_exactly_from_the_newest_complete_checkpoint(runs):
    flexible, _, resumed = runs
    uninterrupted, continued = DIST._scalars(flexible), DIST._scalars(resumed)
    assert sorted(continued) == list(range(RESUMED_FROM + 1, ITERS + 1))
    for iteration in continued:
        for key in ('loss', 'eliminated', 'logit_scale', 'queue_fill', 'lr', 'base_lr'):
            assert continued[iteration][key] == pytest.approx(
                uninterrupted[iteration][key], rel=1e-4), (iteration, key)
    expected, actual = _checkpoint(flexible), _checkpoint(resumed)
    assert actual['state_dict'].keys() == expected['state_dict'].keys()
    for key in expected['state_dict']:
        torch.testing.assert_close(actual['state_dict'][key], expected['state_dict'][key],
                                   rtol=1e-4, atol=1e-6, msg=key)
    torch.testing.assert_close(actual['optimizer']['state'], expected['optimizer']['state'],
                               rtol=1e-4, atol=1e-6)


def test_sharded_resume_continues_every_rank_random_streams(tmp_path):
    """With dropout, drop path, FLIP masks and random augmentation (tiny_vilref_random.py),
    a 2-rank FULL_SHARD run resumed from its checkpoint of iteration 3 logs the uninterrupted
    run's losses: each rank's generators continue from the checkpoint."""
    DIST.generate_synthetic_fundus(tmp_path / 'data', num_train=24, num_val=8, num_test=8,
                                   size=64, seed=1)
    config = tmp_path / 'tiny_vilref_random_fsdp.py'
    config.write_text(
        f"_base_ = [{str(REPO / 'tests/data/configs/tiny_vilref_random.py')!r}, "
        f"{str(REPO / 'configs/_base_/strategies/fsdp.py')!r}]\n"
        "runner_type = 'ViLReFFlexibleRunner'\n")
    options = [f'{split}_dataloader.dataset.data_root={tmp_path / "data"}/'
               for split in ('train', 'val', 'test')]

    def dist_train(work_dir, *args):
        DIST._run(['bash', 'tools/dist_train.sh', str(config), str(WORLD_SIZE),
                   '--work-dir', str(work_dir), *args, '--cfg-options', *options],
                  PORT=str(DIST._free_port()))

    dist_train(tmp_path / 'full')
    dist_train(tmp_path / 'resumed', '--resume', str(tmp_path / 'full' / 'iter_3.pth'))
    uninterrupted = DIST._scalars(tmp_path / 'full')
    resumed = DIST._scalars(tmp_path / 'resumed')
    assert sorted(resumed) == [4, 5, 6]
    for iteration in resumed:
        for key in ('loss', 'eliminated', 'queue_fill'):
            assert resumed[iteration][key] == pytest.approx(
                uninterrupted[iteration][key], rel=0, abs=1e-6), (iteration, key)


def _full_shard_and_one_process(single_run, work_root, *extra_options):
    """Train a 2-rank FULL_SHARD run (batch B) and a 1-process ViLReFRunner run (batch 2B)
    with the single run's config and options plus ``extra_options``; assert that they end
    with the same weights and momentum towers (1e-4), and return both final state dicts."""
    single_config, options, _ = single_run
    config = work_root / 'deterministic_demo_fsdp.py'
    config.write_text(f"_base_ = [{str(single_config)!r}, "
                      f"{str(REPO / 'configs/_base_/strategies/fsdp.py')!r}]\n"
                      "runner_type = 'ViLReFFlexibleRunner'\n")
    options = [*options, *extra_options]
    sharded, single = work_root / 'sharded', work_root / 'single'
    DIST._run(['bash', 'tools/dist_train.sh', str(config), str(WORLD_SIZE), '--work-dir',
               str(sharded), '--no-validate', '--cfg-options', *options,
               f'train_dataloader.batch_size={BATCH}'], PORT=str(DIST._free_port()))
    DIST._run([sys.executable, 'tools/train.py', str(single_config), '--work-dir', str(single),
               '--no-validate', '--cfg-options', *options,
               f'train_dataloader.batch_size={WORLD_SIZE * BATCH}'])
    expected, actual = (_checkpoint(work_dir)['state_dict'] for work_dir in (single, sharded))
    assert any(key.startswith('momentum_') for key in expected)
    for key in expected:
        if not key.startswith('memory_queue.'):
            torch.testing.assert_close(actual[key], expected[key], rtol=1e-4, atol=1e-6,
                                       msg=key)
    return expected, actual


def test_sharded_gradient_accumulation_matches_one_process(single_run, tmp_path):
    """With ``accumulative_counts=2`` a 2-rank FULL_SHARD run (batch B) ends with the weights,
    momentum towers and queue fill of one process with batch 2B accumulating the same way:
    the micro-steps' sharded gradients add up, and the EMA and the enqueue follow the
    optimizer steps."""
    _, actual = _full_shard_and_one_process(single_run, tmp_path,
                                            'optim_wrapper.accumulative_counts=2')
    assert int(actual['memory_queue.num_filled']) == ITERS * WORLD_SIZE * BATCH


def test_sharded_run_starts_from_a_checkpoint_without_momentum_towers(single_run, tmp_path):
    """``load_from`` a checkpoint without momentum towers and queue (as a converted release):
    a 2-rank FULL_SHARD run builds the momentum towers from the loaded towers, as
    ViLReFRunner does, and ends with the weights of one process with batch 2B."""
    trained = _checkpoint(single_run[2], RESUMED_FROM)['state_dict']
    released = tmp_path / 'released.pth'
    torch.save({'state_dict': {key: value for key, value in trained.items()
                               if not key.startswith(('momentum_', 'memory_queue.'))}},
               released)
    _full_shard_and_one_process(single_run, tmp_path, f'load_from={released}')
