"""Samplers whose indices carry a seed for their sample's random transforms.

MMEngine seeds each dataloader worker once, from the seed, the rank and the worker id. A
worker's augmentations then depend on how many samples it has transformed since it started,
and so on ``num_workers``, on prefetching, on whether workers persist across epochs and on
where the run (re)started: a run resumed with fresh workers draws other crops and colour
jitter than the uninterrupted run, and persistent workers continue one stream over epochs that
a resumed run restarts. Here the sampler gives each sample its own seed, a function of the
sampler's seed (the same on every rank) and the sample's position in the global stream of
samples (so different on every rank and in every epoch), and the image-report datasets seed
the generators with it before the sample's transforms (:func:`seeded_random_state`): the
augmentation of a position is the same however, wherever and on how many ranks it is loaded.
"""
import contextlib
import itertools
import random
from typing import Iterator, Optional

import numpy as np
import torch
from mmengine.dataset import DefaultSampler, InfiniteSampler
from mmpretrain.registry import DATA_SAMPLERS


class SampleIndex(int):
    """A dataset index carrying ``seed``, the seed of its sample's random transforms.

    It is an ``int`` everywhere else, and pickles (to the workers) with its seed.
    """

    seed: int

    def __new__(cls, index: int, seed: int) -> 'SampleIndex':
        sample_index = super().__new__(cls, index)
        sample_index.seed = seed
        return sample_index

    def __reduce__(self):
        return SampleIndex, (int(self), self.seed)


def sample_seed(seed: int, position: int) -> int:
    """The 64-bit seed of the sample at ``position`` of a sampler seeded with ``seed``
    (NumPy's ``SeedSequence``, so that neighbouring positions get unrelated streams)."""
    sequence = np.random.SeedSequence([seed % 2**64, position])
    return int(sequence.generate_state(1, np.uint64)[0])


@contextlib.contextmanager
def seeded_random_state(seed: Optional[int]) -> Iterator[None]:
    """Inside, Python's ``random``, NumPy's global generator and torch's CPU generator are
    seeded from ``seed``; afterwards they are as before (so that transforms in the main
    process, ``num_workers=0``, leave the training's streams alone). Nothing happens when
    ``seed`` is None.

    The three get different seeds drawn from ``seed``: Python's and NumPy's Mersenne Twisters
    seeded with the same number would produce the same numbers.

    Args:
        seed (int, optional): A 64-bit seed.
    """
    if seed is None:
        yield
        return
    states = random.getstate(), np.random.get_state(), torch.get_rng_state()
    words = [int(word) for word in np.random.SeedSequence(seed).generate_state(6, np.uint32)]
    random.seed(words[0] << 32 | words[1])
    np.random.seed(words[2:4])
    # the CPU generator only (torch.manual_seed would also reseed every GPU's)
    torch.default_generator.manual_seed(words[4] << 32 | words[5])
    try:
        yield
    finally:
        random.setstate(states[0])
        np.random.set_state(states[1])
        torch.set_rng_state(states[2])


@DATA_SAMPLERS.register_module()
class SeededInfiniteSampler(InfiniteSampler):
    """MMEngine's :class:`~mmengine.dataset.InfiniteSampler` (the same indices in the same
    order) yielding :class:`SampleIndex` es: position p of the infinite stream of all ranks
    (rank r takes r, r + W, ...) gets ``sample_seed(seed, p)``.

    On resume MMEngine's ``IterBasedTrainLoop`` draws and drops the batches already trained,
    so the resumed run continues at the same position.
    """

    def _indices_of_rank(self) -> Iterator[SampleIndex]:
        positions = itertools.count(self.rank, self.world_size)
        for position, index in zip(positions, super()._indices_of_rank()):
            yield SampleIndex(index, sample_seed(self.seed, position))


@DATA_SAMPLERS.register_module()
class SeededDefaultSampler(DefaultSampler):
    """MMEngine's :class:`~mmengine.dataset.DefaultSampler` (the same indices in the same
    order) yielding :class:`SampleIndex` es: position i of epoch e's samples of all ranks gets
    ``sample_seed(seed, e * total_size + i)`` (the epoch from ``set_epoch``, which
    ``DistSamplerSeedHook`` calls)."""

    def __iter__(self) -> Iterator[SampleIndex]:
        first = self.epoch * self.total_size + self.rank
        for i, index in enumerate(super().__iter__()):
            yield SampleIndex(index, sample_seed(self.seed, first + i * self.world_size))
