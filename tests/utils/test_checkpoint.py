"""Checkpoint reading: external files tensor-only, the runner's own files trusted."""
import pytest
import torch
from mmengine.logging import HistoryBuffer
from mmengine.runner.checkpoint import CheckpointLoader

from vilref_mm.utils.checkpoint import load_external_checkpoint, trusted_checkpoints


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
