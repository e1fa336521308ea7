"""Checkpoint reading (tensors-only with MMEngine's objects allowed; anything else only when
trusted; MMEngine's loader inside checkpoint_rule) and writing (tensor-only .pth or
.safetensors, atomically)."""
from pathlib import Path

import numpy as np
import pytest
import torch
from mmengine.logging import HistoryBuffer
from mmengine.runner.checkpoint import CheckpointLoader

from vilref_mm.utils.checkpoint import (CorruptCheckpointError, UntrustedCheckpointError,
                                        checkpoint_is_complete, checkpoint_rule,
                                        load_checkpoint_file,
                                        save_tensor_checkpoint, summarize_keys,
                                        trusted_checkpoints)


def test_external_checkpoint_loads_tensors(tmp_path):
    path = tmp_path / 'weights.pth'
    torch.save({'state_dict': {'w': torch.ones(2, dtype=torch.float16)}, 'epoch': 3}, path)
    loaded = load_checkpoint_file(str(path))
    assert loaded['epoch'] == 3
    assert torch.equal(loaded['state_dict']['w'], torch.ones(2, dtype=torch.float16))


def test_training_checkpoint_objects_load_without_trust(tmp_path):
    """The message hub's HistoryBuffer and numpy values are allow-listed."""
    path = tmp_path / 'iter_2.pth'
    torch.save({'message_hub': {'loss': HistoryBuffer([1.0, 3.0], [1, 1])},
                'meta': {'seed': np.int64(3), 'scores': np.arange(3.0)}}, path)
    loaded = load_checkpoint_file(str(path))
    assert loaded['message_hub']['loss'].mean() == 2.0
    assert loaded['meta']['seed'] == 3 and loaded['meta']['scores'].tolist() == [0., 1., 2.]


def test_other_python_objects_need_trust(tmp_path):
    path = tmp_path / 'pickled.pth'
    torch.save({'state_dict': {'w': torch.ones(2)}, 'cfg': Path('config.py')}, path)
    with pytest.raises(UntrustedCheckpointError,
                       match=r'pickled.pth needs Python objects besides tensors .*pathlib'):
        load_checkpoint_file(str(path))
    with trusted_checkpoints(str(tmp_path)):  # a folder trusts the files under it
        assert load_checkpoint_file(str(path))['cfg'] == Path('config.py')
    with pytest.raises(UntrustedCheckpointError):  # only inside the block
        load_checkpoint_file(str(path))


def test_missing_checkpoint_names_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match='nowhere.pth'):
        load_checkpoint_file(str(tmp_path / 'nowhere.pth'))


class NdarrayMethod:
    """Pickles as ``getattr(numpy.ndarray, 'tofile')``."""

    def __reduce__(self):
        return getattr, (np.ndarray, 'tofile')


def test_getattr_is_allowed_only_for_history_buffer_methods(tmp_path):
    path = tmp_path / 'getattr.pth'
    torch.save({'state_dict': {}, 'x': NdarrayMethod()}, path)
    with pytest.raises(UntrustedCheckpointError, match=r"getattr\(<class 'numpy.ndarray'>"):
        load_checkpoint_file(str(path))
    with trusted_checkpoints(str(path)):
        assert load_checkpoint_file(str(path))['x'] is np.ndarray.tofile


def test_mmengine_loader_follows_the_rule(tmp_path):
    path = tmp_path / 'runner.pth'
    torch.save({'message_hub': HistoryBuffer([1.0, 3.0], [1, 1]), 'cfg': Path('x')}, path)
    with checkpoint_rule(), pytest.raises(UntrustedCheckpointError):
        CheckpointLoader.load_checkpoint(str(path), map_location='cpu')
    with checkpoint_rule(), trusted_checkpoints(str(path)):
        loaded = CheckpointLoader.load_checkpoint(str(path), map_location='cpu')
    assert loaded['message_hub'].mean() == 2.0


@pytest.mark.parametrize('name', ['weights.pth', 'weights.safetensors'])
def test_tensor_checkpoint_round_trip(tmp_path, name):
    tensors = {'half': torch.randn(3, 2).half(), 'transposed': torch.randn(2, 3).t(),
               'count': torch.tensor(7)}
    path = tmp_path / 'out' / name
    save_tensor_checkpoint(tensors, str(path))
    assert list(path.parent.iterdir()) == [path]  # no temporary file left
    with checkpoint_rule():
        through_mmengine = CheckpointLoader.load_checkpoint(str(path), map_location='cpu')
    for loaded in (load_checkpoint_file(str(path)), through_mmengine):
        assert list(loaded) == ['state_dict'] and set(loaded['state_dict']) == set(tensors)
        for key, tensor in tensors.items():
            assert loaded['state_dict'][key].dtype == tensor.dtype
            assert torch.equal(loaded['state_dict'][key], tensor)
    assert checkpoint_is_complete(str(path))


def test_failed_tensor_checkpoint_leaves_nothing(tmp_path):
    path = tmp_path / 'weights.safetensors'
    save_tensor_checkpoint({'w': torch.ones(2)}, str(path))
    with pytest.raises(Exception):
        save_tensor_checkpoint({'w': torch.zeros(2), 'bad': 'not a tensor'}, str(path))
    assert list(tmp_path.iterdir()) == [path]
    assert torch.equal(load_checkpoint_file(str(path))['state_dict']['w'], torch.ones(2))


def test_corrupt_safetensors_names_the_file(tmp_path):
    path = tmp_path / 'broken.safetensors'
    path.write_bytes(b'\x08\x00\x00\x00\x00\x00\x00\x00{"a": 1}')
    with pytest.raises(CorruptCheckpointError, match='broken.safetensors'):
        load_checkpoint_file(str(path))


def test_trusted_loading_unpickles_only_files_that_need_it(tmp_path, monkeypatch):
    """A trusted file that reads tensors-only is still read with weights_only=True; only a
    trusted file holding other objects is unpickled."""
    tensors, foreign = tmp_path / 'converted.pth', tmp_path / 'foreign.pth'
    torch.save({'state_dict': {'w': torch.ones(2)},
                'message_hub': HistoryBuffer([1.0], [1])}, tensors)
    torch.save({'state_dict': {'w': torch.ones(2)}, 'cfg': Path('x')}, foreign)
    calls = []
    real_load = torch.load

    def recording_load(filename, *args, **kwargs):
        calls.append((Path(filename).name, kwargs.get('weights_only')))
        return real_load(filename, *args, **kwargs)

    monkeypatch.setattr(torch, 'load', recording_load)
    with checkpoint_rule(), trusted_checkpoints(str(tmp_path)):
        for path in (tensors, foreign):
            loaded = CheckpointLoader.load_checkpoint(str(path), map_location='cpu')
            assert torch.equal(loaded['state_dict']['w'], torch.ones(2))
    assert calls == [('converted.pth', True), ('foreign.pth', True), ('foreign.pth', False)]


@pytest.mark.parametrize('name', ['iter_3.pth', 'weights.safetensors'])
def test_truncated_checkpoints_are_incomplete(tmp_path, name):
    path = tmp_path / name
    save_tensor_checkpoint({'w': torch.randn(64, 64), 'b': torch.randn(64)}, str(path))
    assert checkpoint_is_complete(str(path))
    data = path.read_bytes()
    for size in (0, 7, 100, len(data) // 2, len(data) - 1):
        path.write_bytes(data[:size])
        assert not checkpoint_is_complete(str(path)), size
        with pytest.raises(CorruptCheckpointError, match='truncated'):
            load_checkpoint_file(str(path))
    assert not checkpoint_is_complete(str(tmp_path / 'missing.pth'))


def test_summarize_keys_groups_by_module():
    keys = [f'image_encoder.layers.{i}.w' for i in range(3)] + ['logit_scale', 'head.fc.bias']
    assert summarize_keys(keys) == 'image_encoder.layers.* (3), logit_scale, head.fc.bias'
