"""scale_schedule: an iteration-based schedule fitted to another number of iterations."""
import copy
from pathlib import Path

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import PARAM_SCHEDULERS

from vilref_mm.engine import scale_schedule

SEGMENTATION_CONFIGS = sorted(
    (Path(__file__).resolve().parents[2] / 'configs' / 'segmentation').glob('*.py'))
BASE_LR = 0.1
START_FACTOR = 1e-3


def make_config(max_iters=300, warm_up=20, val_interval=100, checkpoint=150, logger=20):
    """A warm-up then linear decay schedule, as mmseg configs write it."""
    return Config(dict(
        train_cfg=dict(type='IterBasedTrainLoop', max_iters=max_iters,
                       val_interval=val_interval),
        param_scheduler=[
            dict(type='LinearLR', start_factor=START_FACTOR, by_epoch=False, begin=0,
                 end=warm_up),
            dict(type='PolyLR', eta_min=0., power=1.0, by_epoch=False, begin=warm_up,
                 end=max_iters),
        ],
        default_hooks=dict(logger=dict(type='LoggerHook', interval=logger),
                           checkpoint=dict(type='CheckpointHook', interval=checkpoint))))


def learning_rates(cfg: Config) -> list:
    """The learning rate of each training iteration under the config's schedulers."""
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=BASE_LR)
    schedulers = [PARAM_SCHEDULERS.build(dict(scheduler, optimizer=optimizer))
                  for scheduler in cfg.param_scheduler]
    rates = []
    for _ in range(cfg.train_cfg.max_iters):
        rates.append(optimizer.param_groups[0]['lr'])
        optimizer.step()
        for scheduler in schedulers:
            scheduler.step()
    return rates


@pytest.mark.parametrize('max_iters', [40, 150, 600, 3000])
def test_scales_in_proportion(max_iters):
    cfg = make_config()
    old = copy.deepcopy(cfg)
    factor = max_iters / old.train_cfg.max_iters
    scale_schedule(cfg, max_iters)

    assert cfg.train_cfg.max_iters == max_iters
    warm_up, decay = cfg.param_scheduler
    old_warm_up, old_decay = old.param_scheduler
    assert warm_up.begin == 0 and decay.end == max_iters
    assert warm_up.end == decay.begin == round(old_warm_up.end * factor)
    assert cfg.train_cfg.val_interval == round(old.train_cfg.val_interval * factor)
    assert (cfg.default_hooks.checkpoint.interval ==
            round(old.default_hooks.checkpoint.interval * factor))
    assert (cfg.default_hooks.logger.interval ==
            min(old.default_hooks.logger.interval, max_iters))
    # everything else is untouched
    assert warm_up.start_factor == old_warm_up.start_factor and decay.power == old_decay.power


@pytest.mark.parametrize('max_iters', [1, 2, 3, 5, 14, 15])
def test_short_schedules_keep_a_warm_up_that_ends(max_iters):
    cfg = make_config()
    scale_schedule(cfg, max_iters)

    warm_up, decay = cfg.param_scheduler
    # one iteration at the start factor and at least one at the end factor, never less
    assert warm_up.end - warm_up.begin >= 2
    assert decay.begin == warm_up.end and decay.end > decay.begin
    assert 1 <= cfg.train_cfg.val_interval <= max_iters
    assert 1 <= cfg.default_hooks.checkpoint.interval <= max_iters
    assert cfg.default_hooks.logger.interval <= max_iters

    rates = learning_rates(cfg)
    assert len(rates) == max_iters
    assert rates[0] == pytest.approx(BASE_LR * START_FACTOR)
    if max_iters >= 2:  # the warm-up reaches the base rate, the decay then lowers it
        assert rates[1] == pytest.approx(BASE_LR)
        assert all(a >= b for a, b in zip(rates[1:], rates[2:]))


def test_a_one_iteration_warm_up_would_never_end():
    """Why scale_schedule keeps two warm-up iterations: MMEngine's LinearLR over one stays
    at its start factor, and the chained decay scales that value."""
    cfg = make_config(max_iters=4, warm_up=1)
    rates = learning_rates(cfg)
    assert max(rates) == pytest.approx(BASE_LR * START_FACTOR)

    scale_schedule(cfg, 4)
    assert max(learning_rates(cfg)) == pytest.approx(BASE_LR)


def test_learning_rates_follow_the_old_curve():
    cfg = make_config(max_iters=3000, warm_up=200)
    old_rates = learning_rates(cfg)
    scale_schedule(cfg, 300)
    rates = learning_rates(cfg)
    # iteration i of the new schedule has the rate of iteration 10 i of the old one
    assert rates[::30] == pytest.approx(old_rates[::300], rel=0.05, abs=1e-6)


def test_other_boundaries_and_open_ends():
    cfg = Config(dict(
        train_cfg=dict(type='IterBasedTrainLoop', max_iters=1000, val_begin=500),
        param_scheduler=[
            dict(type='LinearLR', by_epoch=False, begin=0, end=50),
            dict(type='CosineAnnealingLR', by_epoch=False, begin=50, end=800),
            dict(type='ConstantLR', factor=0.5, by_epoch=False, begin=800),
        ]))
    scale_schedule(cfg, 100)
    warm_up, cosine, constant = cfg.param_scheduler
    assert (warm_up.begin, warm_up.end, cosine.begin, cosine.end) == (0, 5, 5, 80)
    assert constant.begin == 80 and 'end' not in constant
    assert cfg.train_cfg.val_begin == 50 and 'val_interval' not in cfg.train_cfg


@pytest.mark.parametrize('path', SEGMENTATION_CONFIGS, ids=lambda p: p.stem)
def test_segmentation_configs(path):
    cfg = Config.fromfile(str(path))
    scale_schedule(cfg, 7)
    assert cfg.train_cfg.max_iters == 7
    for scheduler in cfg.param_scheduler:
        assert scheduler.end > scheduler.begin
        if scheduler.type == 'LinearLR':
            assert scheduler.end - scheduler.begin >= 2
    assert 1 <= cfg.train_cfg.val_interval <= 7
    assert 1 <= cfg.default_hooks.checkpoint.interval <= 7
    assert cfg.default_hooks.logger.interval <= 7


def test_rejects_what_it_cannot_scale():
    with pytest.raises(ValueError, match='at least 1'):
        scale_schedule(make_config(), 0)
    epoch_based = Config(dict(train_cfg=dict(type='EpochBasedTrainLoop', max_epochs=10)))
    with pytest.raises(ValueError, match='no max_iters'):
        scale_schedule(epoch_based, 100)
    by_epoch = make_config()
    by_epoch.param_scheduler[1].by_epoch = True
    with pytest.raises(ValueError, match=r'param_scheduler\[1\] \(PolyLR\) counts epochs'):
        scale_schedule(by_epoch, 100)
    assert by_epoch.train_cfg.max_iters == 300  # unchanged when rejected


@pytest.mark.parametrize('max_iters,expected', [(1000, 200), (250, 50), (3, 1), (1, 0)])
def test_memory_queue_warm_up_scales(max_iters, expected):
    cfg = make_config(max_iters=500)
    cfg.custom_hooks = [dict(type='MomentumUpdateHook', momentum=0.99),
                        dict(type='MemoryQueueHook', warmup_iters=100)]
    scale_schedule(cfg, max_iters)
    assert cfg.custom_hooks[1].warmup_iters == expected
    assert 'warmup_iters' not in cfg.custom_hooks[0]
