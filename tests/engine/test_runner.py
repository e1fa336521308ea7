"""build_runner(quiet=True): a quiet console while the runner is built, a complete log file;
the checkpoints ViLReFRunner and the FlexibleRunner strategies read under the trust rule."""
import logging
import os

import pytest
import torch
from mmengine.config import Config
from mmengine.logging import MMLogger
from mmengine.model import BaseModel
from mmengine.registry import DATASETS, MODELS
from mmengine.runner import FlexibleRunner
from mmengine.runner.checkpoint import CheckpointLoader, load_from_local
from torch import nn
from torch.utils.data import Dataset

from vilref_mm.engine import (ViLReFFlexibleRunner, ViLReFRunner,
                              ViLReFSingleDeviceStrategy, build_runner)
from vilref_mm.engine.runner import PARAMETER_MESSAGES, drop_console_messages
from vilref_mm.utils.checkpoint import UntrustedCheckpointError, save_tensor_checkpoint


@MODELS.register_module(force=True)
class TinyRunnerTestModel(BaseModel):

    def __init__(self, init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        self.linear = nn.Linear(2, 1)

    def forward(self, inputs=None, data_samples=None, mode='tensor'):
        if mode == 'loss':
            return dict(loss=self.linear(inputs).pow(2).mean())
        return inputs


@DATASETS.register_module(force=True)
class TinyRunnerTestDataset(Dataset):
    metainfo: dict = {}

    def __len__(self) -> int:
        return 4

    def __getitem__(self, index: int) -> dict:
        return dict(inputs=torch.full((2, ), float(index)))


class Payload:
    """Unpickling it creates the folder ``marker``: proof that a file's code ran."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return os.mkdir, (self.marker, )


def runner_config(work_dir) -> Config:
    # A name of its own: runners built within the same second would otherwise share the
    # timestamp MMEngine names their logger after, hence one logger.
    return Config(dict(model=dict(type='TinyRunnerTestModel'), work_dir=str(work_dir),
                       experiment_name=f'{work_dir.parent.name}_{work_dir.name}',
                       env_cfg=dict(dist_cfg=dict(backend='gloo'))))


def log_text(runner) -> str:
    file_handler, = [h for h in runner.logger.handlers if isinstance(h, logging.FileHandler)]
    file_handler.flush()
    with open(file_handler.baseFilename, encoding='utf-8') as log:
        return log.read()


@pytest.mark.parametrize('quiet', [False, True])
def test_quiet_build_keeps_the_log_file(tmp_path, capsys, quiet):
    runner = build_runner(runner_config(tmp_path / str(quiet)), quiet=quiet)
    build_console = capsys.readouterr().out
    assert isinstance(runner, ViLReFRunner) and not ViLReFRunner.quiet_build
    assert runner.logger is MMLogger.get_current_instance()

    runner.logger.info('after the build')
    runner.logger.info(PARAMETER_MESSAGES[0] + 'backbone.norm.bias:weight_decay=0.0')
    runner.logger.warning('a warning')
    console = capsys.readouterr().out

    build_messages = ('System environment', 'Config:', 'Hooks will be executed')
    for message in build_messages:
        assert (message in build_console) != quiet, message
        assert message in log_text(runner)
    assert 'after the build' in console and 'a warning' in console
    assert (PARAMETER_MESSAGES[0] in console) != quiet
    assert PARAMETER_MESSAGES[0] in log_text(runner)


def test_quiet_build_still_shows_warnings(tmp_path, capsys):
    runner = build_runner(runner_config(tmp_path), quiet=True)
    capsys.readouterr()
    ViLReFRunner.quiet_build = True  # as during a build
    try:
        logger = runner.build_logger(log_level='INFO', log_file=str(tmp_path / 'other.log'),
                                     name='quiet_build_test')
    finally:
        ViLReFRunner.quiet_build = False
    logger.info('progress')
    logger.warning('a problem')
    console = capsys.readouterr().out
    assert 'a problem' in console and 'progress' not in console
    with open(tmp_path / 'other.log', encoding='utf-8') as log:
        assert 'progress' in log.read()


def test_drop_console_messages(tmp_path, capsys):
    logger = MMLogger.get_instance('drop_console_messages_test', log_level='INFO',
                                   log_file=str(tmp_path / 'drop.log'))
    drop_console_messages(logger, ['noise'])
    logger.info('some noise')
    logger.info('a result')
    console = capsys.readouterr().out
    assert 'a result' in console and 'noise' not in console
    with open(tmp_path / 'drop.log', encoding='utf-8') as log:
        assert 'some noise' in log.read()


def training_config(work_dir, name: str, strategy: bool, **overrides) -> Config:
    """Two iterations of the tiny model, SGD with learning rate 0 (the weights stay as
    initialised), a checkpoint after the second."""
    cfg = dict(
        model=dict(type='TinyRunnerTestModel'), work_dir=str(work_dir), experiment_name=name,
        train_dataloader=dict(dataset=dict(type='TinyRunnerTestDataset'), batch_size=2,
                              sampler=dict(type='DefaultSampler', shuffle=False),
                              collate_fn=dict(type='default_collate')),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.)),
        train_cfg=dict(by_epoch=False, max_iters=2),
        default_hooks=dict(checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=2)),
        env_cfg=dict(dist_cfg=dict(backend='gloo')))
    if strategy:
        cfg['strategy'] = dict(type='ViLReFSingleDeviceStrategy')
    cfg.update(overrides)
    return Config(cfg)


def test_flexible_runner_defaults_to_our_strategy(tmp_path):
    runner = ViLReFFlexibleRunner.from_cfg(
        training_config(tmp_path, f'{tmp_path.name}_default_strategy', strategy=False))
    assert type(runner.strategy) is ViLReFSingleDeviceStrategy


@pytest.mark.parametrize('runner_class', [ViLReFRunner, FlexibleRunner])
def test_runner_reads_checkpoints_under_the_rule(tmp_path, runner_class):
    """init_cfg Pretrained, resume and load_from are read by the trust rule (a safetensors
    file, MMEngine's message hub objects, a refused payload) and MMEngine's loader is its own
    again afterwards: ViLReFRunner, and FlexibleRunner with ViLReFSingleDeviceStrategy."""
    flexible = runner_class is FlexibleRunner
    name = f'{tmp_path.name}_{runner_class.__name__}'
    weights = {'linear.weight': torch.tensor([[0.5, -2.]]), 'linear.bias': torch.tensor([3.])}
    save_tensor_checkpoint(weights, str(tmp_path / 'weights.safetensors'))
    work_dir = tmp_path / 'work'

    runner = runner_class.from_cfg(training_config(
        work_dir, f'{name}_init', flexible, model=dict(
            type='TinyRunnerTestModel',
            init_cfg=dict(type='Pretrained', checkpoint=str(tmp_path / 'weights.safetensors')))))
    model = runner.train()
    for key, value in weights.items():  # MMEngine's own loader cannot read safetensors
        torch.testing.assert_close(model.state_dict()[key], value, rtol=0, atol=0)
    assert (work_dir / 'iter_2.pth').is_file()

    resumed = runner_class.from_cfg(training_config(
        work_dir, f'{name}_resume', flexible, resume=True, train_cfg=dict(by_epoch=False,
                                                                          max_iters=3)))
    resumed.train()
    assert resumed.iter == 3
    # The message hub's history (HistoryBuffer objects) came back from the checkpoint.
    assert len(resumed.message_hub.get_scalar('train/loss').data[0]) == 3

    marker = tmp_path / 'code_ran'
    torch.save({'state_dict': weights, 'meta': Payload(marker)}, tmp_path / 'downloaded.pth')
    refusing = runner_class.from_cfg(training_config(
        tmp_path / 'other', f'{name}_payload', flexible,
        load_from=str(tmp_path / 'downloaded.pth')))
    with pytest.raises(UntrustedCheckpointError, match='downloaded.pth'):
        refusing.train()
    assert not marker.exists()
    assert CheckpointLoader._schemes[''] is load_from_local


def test_a_strategy_needs_the_flexible_runner(tmp_path):
    """ViLReFRunner would train without the strategy: the config is refused, naming the fix."""
    cfg = runner_config(tmp_path / 'work')
    cfg.strategy = dict(type='ViLReFDDPStrategy')
    with pytest.raises(ValueError, match="strategy.*ViLReFDDPStrategy.*ViLReFFlexibleRunner"):
        ViLReFRunner.from_cfg(cfg)
    cfg.runner_type = 'ViLReFRunner'
    with pytest.raises(ValueError, match='ViLReFFlexibleRunner'):
        build_runner(cfg)
