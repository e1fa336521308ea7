"""Importing vilref_mm leaves MMEngine's checkpoint loader as it is: the trust rule applies
only inside :func:`checkpoint_rule`, which vilref_mm's runner, strategies and models open."""
import os
import subprocess
import sys
from collections import OrderedDict
from pathlib import Path

import mmengine
import pytest
import torch
from mmengine.runner import load_checkpoint
from mmengine.runner.checkpoint import CheckpointLoader, load_from_local
from torch import nn

from vilref_mm.utils.checkpoint import (UntrustedCheckpointError, checkpoint_rule,
                                        save_tensor_checkpoint)

REPO = Path(__file__).resolve().parents[2]

# Every prefix whose loader differs after importing vilref_mm and all its modules.
CHANGED_SCHEMES = '''
import importlib
import pkgutil

from mmengine.runner.checkpoint import CheckpointLoader

before = dict(CheckpointLoader._schemes)
import vilref_mm

for module in pkgutil.walk_packages(vilref_mm.__path__, 'vilref_mm.'):
    importlib.import_module(module.name)
after = dict(CheckpointLoader._schemes)
print(sorted(p for p in {*before, *after} if before.get(p) is not after.get(p)))
'''


def test_importing_vilref_mm_changes_no_loader():
    env = {**os.environ, 'PYTHONPATH': f'{REPO}{os.pathsep}{os.environ.get("PYTHONPATH", "")}',
           'OMP_NUM_THREADS': '1'}
    proc = subprocess.run([sys.executable, '-c', CHANGED_SCHEMES], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert proc.stdout.strip().splitlines()[-1] == '[]'
    assert CheckpointLoader._schemes[''] is load_from_local


def test_mmpretrain_checkpoint_loads_as_without_vilref_mm(tmp_path, monkeypatch):
    """An mmpretrain-style checkpoint goes through MMEngine's own local loader, through
    ``CheckpointLoader`` and ``mmengine.runner.load_checkpoint`` alike."""
    source = nn.Linear(3, 2)
    meta = dict(epoch=3, iter=30, mmengine_version=mmengine.__version__, seed=0,
                time='20250101_120000', experiment_name='resnet18_8xb32_in1k',
                dataset_meta=dict(classes=('normal', 'glaucoma')))
    path = str(tmp_path / 'epoch_3.pth')
    torch.save({'meta': meta, 'state_dict': OrderedDict(source.state_dict())}, path)
    calls = []
    real_load = torch.load

    def recording_load(*args, **kwargs):
        calls.append(kwargs)
        return real_load(*args, **kwargs)

    monkeypatch.setattr(torch, 'load', recording_load)
    expected = load_from_local(path, 'cpu')
    loaded = CheckpointLoader.load_checkpoint(path, map_location='cpu')
    target = nn.Linear(3, 2)
    returned = load_checkpoint(target, path, map_location='cpu', strict=True)
    # MMEngine's call, torch.load(filename, map_location=...); the rule adds weights_only=True
    assert calls == [{'map_location': 'cpu'}] * 3
    assert loaded['meta'] == returned['meta'] == expected['meta'] == meta
    for key, value in source.state_dict().items():
        assert torch.equal(loaded['state_dict'][key], value)
        assert torch.equal(target.state_dict()[key], value)

    # A file holding another Python object: whatever MMEngine's loader does (torch's default).
    other = str(tmp_path / 'with_path.pth')
    torch.save({'state_dict': {}, 'meta': dict(work_dir=Path('work_dirs'))}, other)

    def outcome(load):
        try:
            return load()['meta']
        except Exception as error:  # the type of whatever it raises
            return type(error)

    assert outcome(lambda: CheckpointLoader.load_checkpoint(other, 'cpu')) == outcome(
        lambda: load_from_local(other, 'cpu'))


def test_checkpoint_rule_is_scoped(tmp_path):
    weights = str(tmp_path / 'weights.safetensors')
    save_tensor_checkpoint({'w': torch.ones(2)}, weights)
    payload = str(tmp_path / 'pickled.pth')
    torch.save({'state_dict': {}, 'cfg': Path('x')}, payload)
    with checkpoint_rule():
        assert torch.equal(
            CheckpointLoader.load_checkpoint(weights, 'cpu')['state_dict']['w'], torch.ones(2))
        with pytest.raises(UntrustedCheckpointError, match='pickled.pth'):
            CheckpointLoader.load_checkpoint(payload, 'cpu')
    assert CheckpointLoader._schemes[''] is load_from_local
    with pytest.raises(ValueError), checkpoint_rule():
        raise ValueError('a failed load')
    assert CheckpointLoader._schemes[''] is load_from_local

    # Blocks of two threads that overlap: the rule holds until the last one ends.
    first, second = checkpoint_rule(), checkpoint_rule()
    first.__enter__()
    second.__enter__()
    first.__exit__(None, None, None)
    assert CheckpointLoader._schemes[''] is not load_from_local
    second.__exit__(None, None, None)
    assert CheckpointLoader._schemes[''] is load_from_local
