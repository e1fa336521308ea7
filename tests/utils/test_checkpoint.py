"""Checkpoint reading (external files tensor-only, the runner's own files trusted) and writing
(tensor-only .pth or .safetensors, atomically)."""
import pytest
import torch
from mmengine.logging import HistoryBuffer
from mmengine.runner.checkpoint import CheckpointLoader

from vilref_mm.utils.checkpoint import (load_external_checkpoint, save_tensor_checkpoint,
                                        trusted_checkpoints)


def test_external_checkpoint_loads_tensors(tmp_path):
    path = tmp_path / 'weights.pth'
    torch.save({'state_dict': {'w': torch.ones(2, dtype=torch.float16)}, 'epoch': 3}, path)
    loaded = load_external_checkpoint(str(path))
    assert loaded['epoch'] == 3
    assert torch.equal(loaded['state_dict']['w'], torch.ones(2, dtype=torch.float16))


def test_external_checkpoint_rejects_python_objects(tmp_path):
    path = tmp_path / 'pickled.pth'
    torch.save({'message_hub': HistoryBuffer([1.0], [1])}, path)
    with pytest.raises(RuntimeError, match='pickled.pth'):
        load_external_checkpoint(str(path))


def test_missing_checkpoint_names_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match='nowhere.pth'):
        load_external_checkpoint(str(tmp_path / 'nowhere.pth'))


def test_mmengine_loader_is_safe_unless_trusted(tmp_path):
    path = tmp_path / 'runner.pth'
    torch.save({'message_hub': HistoryBuffer([1.0, 3.0], [1, 1])}, path)
    with pytest.raises(RuntimeError):
        CheckpointLoader.load_checkpoint(str(path), map_location='cpu')
    with trusted_checkpoints():
        loaded = CheckpointLoader.load_checkpoint(str(path), map_location='cpu')
    assert loaded['message_hub'].mean() == 2.0


@pytest.mark.parametrize('name', ['weights.pth', 'weights.safetensors'])
def test_tensor_checkpoint_round_trip(tmp_path, name):
    tensors = {'half': torch.randn(3, 2).half(), 'transposed': torch.randn(2, 3).t(),
               'count': torch.tensor(7)}
    path = tmp_path / 'out' / name
    save_tensor_checkpoint(tensors, str(path))
    assert list(path.parent.iterdir()) == [path]  # no temporary file left
    for loaded in (load_external_checkpoint(str(path)),
                   CheckpointLoader.load_checkpoint(str(path), map_location='cpu')):
        assert list(loaded) == ['state_dict'] and set(loaded['state_dict']) == set(tensors)
        for key, tensor in tensors.items():
            assert loaded['state_dict'][key].dtype == tensor.dtype
            assert torch.equal(loaded['state_dict'][key], tensor)
    with trusted_checkpoints():  # the runner's load_from reads safetensors too
        loaded = CheckpointLoader.load_checkpoint(str(path), map_location='cpu')
    assert torch.equal(loaded['state_dict']['count'], torch.tensor(7))


def test_failed_tensor_checkpoint_leaves_nothing(tmp_path):
    path = tmp_path / 'weights.safetensors'
    save_tensor_checkpoint({'w': torch.ones(2)}, str(path))
    with pytest.raises(Exception):
        save_tensor_checkpoint({'w': torch.zeros(2), 'bad': 'not a tensor'}, str(path))
    assert list(tmp_path.iterdir()) == [path]
    assert torch.equal(load_external_checkpoint(str(path))['state_dict']['w'], torch.ones(2))


def test_corrupt_safetensors_names_the_file(tmp_path):
    path = tmp_path / 'broken.safetensors'
    path.write_bytes(b'\x08\x00\x00\x00\x00\x00\x00\x00{"a": 1}')
    with pytest.raises(RuntimeError, match='broken.safetensors'):
        load_external_checkpoint(str(path))


def test_trusted_loading_unpickles_only_files_that_need_it(tmp_path, monkeypatch):
    """Inside trusted_checkpoints a tensor-only file is still read with weights_only=True;
    only a file holding Python objects (a training checkpoint) is unpickled."""
    tensors, runner_file = tmp_path / 'converted.pth', tmp_path / 'iter_6.pth'
    torch.save({'state_dict': {'w': torch.ones(2)}}, tensors)
    torch.save({'state_dict': {'w': torch.ones(2)},
                'message_hub': HistoryBuffer([1.0], [1])}, runner_file)
    calls = []
    real_load = torch.load

    def recording_load(filename, *args, **kwargs):
        calls.append((str(filename), kwargs.get('weights_only')))
        return real_load(filename, *args, **kwargs)

    monkeypatch.setattr(torch, 'load', recording_load)
    with trusted_checkpoints():
        for path in (tensors, runner_file):
            loaded = CheckpointLoader.load_checkpoint(str(path), map_location='cpu')
            assert torch.equal(loaded['state_dict']['w'], torch.ones(2))
    assert calls == [(str(tensors), True), (str(runner_file), False)]
