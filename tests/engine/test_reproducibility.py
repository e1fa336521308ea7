"""The pieces of exact resume: random states, per-sample seeds, the samplers that give them."""
import itertools
import math
import pickle
import random

import numpy as np
import pytest
import torch
from mmcv.transforms import BaseTransform
from mmengine.dataset import DefaultSampler, InfiniteSampler
from mmpretrain.registry import TRANSFORMS

from vilref_mm.datasets import (ImageReportDataset, SampleIndex, SeededDefaultSampler,
                                SeededInfiniteSampler)
from vilref_mm.datasets.synthetic import generate_synthetic_fundus
from vilref_mm.datasets.samplers import sample_seed, seeded_random_state
from vilref_mm.engine.random_state import get_random_state, set_random_state


def draws() -> tuple:
    return random.random(), float(np.random.rand()), float(torch.rand(()))


def test_random_state_round_trip():
    state = get_random_state()
    expected = draws()
    draws()
    set_random_state(state)
    assert draws() == expected


def test_seeded_random_state_is_per_seed_and_leaves_the_outer_streams():
    state = get_random_state()
    with seeded_random_state(sample_seed(0, 5)):
        first = draws()
    assert len(set(first)) == 3  # three generators, three streams
    outer = draws()
    with seeded_random_state(sample_seed(0, 5)):
        assert draws() == first
    with seeded_random_state(sample_seed(0, 6)):
        assert draws() != first
    set_random_state(state)
    assert draws() == outer
    with seeded_random_state(None):
        assert draws() != outer


def test_sample_index_is_an_int_with_its_seed():
    index = SampleIndex(3, 2**64 - 1)
    assert index == 3 and [10, 11, 12, 13][index] == 13
    again = pickle.loads(pickle.dumps(index))
    assert type(again) is SampleIndex and again == 3 and again.seed == 2**64 - 1


def ranked(sampler, rank: int, world_size: int):
    """``sampler`` as rank ``rank`` of ``world_size`` would build it."""
    sampler.rank, sampler.world_size = rank, world_size
    if isinstance(sampler, InfiniteSampler):
        sampler.indices = sampler._indices_of_rank()
    else:
        sampler.num_samples = math.ceil(len(sampler.dataset) / world_size)
        sampler.total_size = sampler.num_samples * world_size
    return sampler


def test_seeded_infinite_sampler_seeds_by_global_position():
    dataset = list(range(5))
    plain = list(itertools.islice(InfiniteSampler(dataset, seed=3), 12))
    single = list(itertools.islice(SeededInfiniteSampler(dataset, seed=3), 12))
    assert single == plain  # the same indices, in the same order
    assert [index.seed for index in single] == [sample_seed(3, p) for p in range(12)]
    # Rank r of 2 takes positions r, r + 2, ...: the same samples with the same seeds.
    for rank in (0, 1):
        sampler = ranked(SeededInfiniteSampler(dataset, seed=3), rank, 2)
        taken = list(itertools.islice(sampler, 6))
        assert [(int(i), i.seed) for i in taken] == [
            (int(i), i.seed) for i in single[rank::2]]


def test_seeded_default_sampler_seeds_by_epoch_and_position():
    dataset = list(range(6))
    sampler = SeededDefaultSampler(dataset, seed=3)
    for epoch in (0, 1):
        sampler.set_epoch(epoch)
        plain = DefaultSampler(dataset, seed=3)
        plain.set_epoch(epoch)
        indices = list(sampler)
        assert indices == list(plain)
        assert [index.seed for index in indices] == [
            sample_seed(3, epoch * 6 + position) for position in range(6)]
    for rank in (0, 1):
        two = ranked(SeededDefaultSampler(dataset, seed=3), rank, 2)
        two.set_epoch(1)
        assert [(int(i), i.seed) for i in two] == [(int(i), i.seed) for i in indices[rank::2]]


@TRANSFORMS.register_module(force=True)
class DrawRandom(BaseTransform):
    """Replaces the sample with one draw of each generator."""

    def transform(self, results: dict) -> dict:
        return dict(draws=draws())


@pytest.mark.parametrize('num_workers', [0, 2])
def test_dataset_transforms_draw_from_the_sample_seed(num_workers, tmp_path):
    """A dataset of the image-report family seeds the transforms of a SampleIndex: the same
    index and seed give the same draw in the main process and in any worker."""
    generate_synthetic_fundus(tmp_path, num_train=4, num_val=0, num_test=0, size=32, seed=1)
    dataset = ImageReportDataset(data_root=str(tmp_path), ann_file='train.jsonl',
                                 pipeline=[dict(type='DrawRandom')])
    seeded = [SampleIndex(i, sample_seed(0, i)) for i in range(4)]
    loader = torch.utils.data.DataLoader(dataset, batch_size=None, sampler=seeded * 2,
                                         num_workers=num_workers)
    loaded = [tuple(sample['draws']) for sample in loader]
    assert loaded[:4] == loaded[4:]
    assert loaded[:4] == [dataset[index]['draws'] for index in seeded]
    assert len(set(loaded[:4])) == 4
