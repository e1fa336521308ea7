"""build_runner(quiet=True): a quiet console while the runner is built, a complete log file."""
import logging

import pytest
from mmengine.config import Config
from mmengine.logging import MMLogger
from mmengine.model import BaseModel
from mmengine.registry import MODELS

from vilref_mm.engine import ViLReFRunner, build_runner
from vilref_mm.engine.runner import PARAMETER_MESSAGES, drop_console_messages


@MODELS.register_module(force=True)
class TinyRunnerTestModel(BaseModel):

    def forward(self, inputs=None, data_samples=None, mode='tensor'):
        return inputs


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
