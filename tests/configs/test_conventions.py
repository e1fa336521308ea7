"""Every config follows the OpenMMLab conventions: its name, our runner for the upstream tools,
and the TensorBoard switch of its runtime."""
import re
from pathlib import Path

import pytest
from mmengine.config import Config
from mmengine.registry import RUNNERS, VISBACKENDS, init_default_scope

from vilref_mm.engine import ViLReFRunner

REPO = Path(__file__).resolve().parents[2]
CONFIGS = sorted(path for path in (REPO / 'configs').rglob('*.py') if '_base_' not in path.parts)
#: The documented entry points, kept at their paths; each inherits a conventionally named config.
ENTRY_POINTS = {'pretrain_vitb': 'vilref_vit-b16_8xb32-20e_fundus-reports-224px',
                'pretrain_rn50': 'vilref_rn50_8xb32-20e_fundus-reports-224px'}
#: {algorithm}_{backbone}_{N}xb{B}-{schedule}_{dataset}-{resolution}, or `zero-shot` for the
#: training part of a config that does not train; schedules in epochs (`30e`) or iterations
#: (`450it`, `40kit`).
NAME = re.compile(r'^[a-z0-9-]+_[a-z0-9-]+_(\d+xb\d+-\d+k?(e|it)|zero-shot)_[a-z0-9-]+-'
                  r'(\d+px|\d+x\d+)$')


def config_id(path: Path) -> str:
    return str(path.relative_to(REPO / 'configs'))


def test_config_names_follow_the_convention():
    assert len(CONFIGS) > 50
    wrong = [config_id(path) for path in CONFIGS
             if path.stem not in ENTRY_POINTS and not NAME.match(path.stem)]
    assert not wrong, f'configs named outside the convention: {wrong}'
    for entry, recipe in ENTRY_POINTS.items():
        text = (REPO / 'configs' / 'vilref' / f'{entry}.py').read_text()
        assert f"_base_ = ['./{recipe}.py']" in text


@pytest.mark.parametrize('path', CONFIGS, ids=config_id)
def test_every_config_runs_on_our_runner_with_a_tensorboard_switch(path, monkeypatch):
    cfg = Config.fromfile(path)
    # What mmpretrain's and mmseg's tools/train.py build: RUNNERS in the config's scope.
    init_default_scope(cfg.default_scope)
    with RUNNERS.switch_scope_and_registry(cfg.default_scope) as registry:
        assert registry.get(cfg.runner_type) is ViLReFRunner
    assert [backend['type'] for backend in cfg.visualizer.vis_backends] == ['LocalVisBackend']
    monkeypatch.setenv('VILREF_TENSORBOARD', '1')
    switched = Config.fromfile(path)
    assert [backend['type'] for backend in switched.visualizer.vis_backends] == [
        'LocalVisBackend', 'TensorboardVisBackend']


def test_the_tensorboard_backend_writes_events(tmp_path):
    """`make install` installs TensorBoard: the switched-on backend writes an event file."""
    backend = VISBACKENDS.build(dict(type='TensorboardVisBackend', save_dir=str(tmp_path)))
    backend.add_scalar('loss', 1.5, step=1)
    backend.close()
    assert list(tmp_path.rglob('events.out.tfevents.*'))
