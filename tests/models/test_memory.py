"""The memory queue: FIFO order, wrap-around, unfilled slots, exact state restore."""
import pytest
import torch
from mmengine.runner.checkpoint import load_state_dict as mmengine_load_state_dict

from vilref_mm.models.memory import MemoryQueue


def _batch(start: int, n: int, dims: int = 4, classes: int = 3):
    ids = torch.arange(start, start + n, dtype=torch.float32)
    return ids[:, None].expand(n, dims), -ids[:, None].expand(n, dims), ids[:, None].expand(
        n, classes) % 2


def test_unfilled_slots_are_not_handed_out():
    queue = MemoryQueue(size=8, embed_dims=4, num_classes=3)
    assert queue.fill == 0 and all(t.shape[0] == 0 for t in queue.filled())
    queue.enqueue(*_batch(0, 4))
    image, text, labels = queue.filled()
    assert image.shape == (4, 4) and text.shape == (4, 4) and labels.shape == (4, 3)
    assert torch.equal(image[:, 0], torch.arange(4.0))
    assert torch.equal(text[:, 0], -torch.arange(4.0))


def test_wrap_around_overwrites_the_oldest():
    queue = MemoryQueue(size=8, embed_dims=4, num_classes=3)
    for start in (0, 4, 8):  # third batch replaces entries 0..3
        queue.enqueue(*_batch(start, 4))
    image, _, labels = queue.filled()
    assert queue.fill == 8
    assert sorted(image[:, 0].tolist()) == list(range(4, 12))
    assert torch.equal(labels[:, 0], image[:, 0] % 2)
    # A batch that straddles the end wraps to the start.
    queue.enqueue(*_batch(100, 6))
    assert sorted(queue.filled()[0][:, 0].tolist()) == [10, 11, 100, 101, 102, 103, 104, 105]
    assert int(queue.ptr) == (12 + 6) % 8


def test_state_dict_restores_queue_exactly():
    queue = MemoryQueue(size=6, embed_dims=4, num_classes=3)
    queue.enqueue(*_batch(0, 4))
    restored = MemoryQueue(size=6, embed_dims=4, num_classes=3)
    restored.load_state_dict(queue.state_dict())
    assert restored.fill == 4
    for a, b in zip(queue.filled(), restored.filled()):
        assert torch.equal(a, b)
    queue.enqueue(*_batch(4, 4))
    restored.enqueue(*_batch(4, 4))
    for a, b in zip(queue.filled(), restored.filled()):
        assert torch.equal(a, b)


def test_too_large_batch_is_an_error():
    queue = MemoryQueue(size=2, embed_dims=4, num_classes=3)
    with pytest.raises(ValueError, match='does not fit'):
        queue.enqueue(*_batch(0, 3))


def test_queue_of_another_size_is_an_error_also_when_loading_non_strictly():
    queue = MemoryQueue(size=8, embed_dims=4, num_classes=3)
    queue.enqueue(*_batch(0, 6))
    larger = MemoryQueue(size=16, embed_dims=4, num_classes=3)
    message = r'image_feats: .* queue of 8 entries, the model one of 16; set model.queue_size=8'
    with pytest.raises(ValueError, match=message):
        larger.load_state_dict(queue.state_dict())
    with pytest.raises(ValueError, match=message):  # MMEngine's load_from: only warns on shapes
        mmengine_load_state_dict(larger, queue.state_dict(), strict=False)
    assert larger.fill == 0
