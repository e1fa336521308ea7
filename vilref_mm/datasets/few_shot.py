"""Few-shot training sets: a fixed, seeded fraction of a labelled dataset (docs/transfer.md)."""
import copy
from typing import List, Sequence, Union

import numpy as np
from mmengine.dataset import BaseDataset, force_full_init
from mmengine.logging import MMLogger
from mmpretrain.registry import DATASETS


def sample_label(data_info: dict) -> Union[int, List[int], None]:
    """The label of a data info, as :func:`few_shot_indices` takes it.

    Args:
        data_info: Has ``gt_score`` (a multi-label vector; classes >= 0.5 count, uncertain
            0.5 included) or ``gt_label`` (a class index, or a list of them).

    Returns:
        int | list[int] | None: The class index of a single-label sample, the positive
        classes of a multi-label one, None for an unlabelled one.
    """
    if data_info.get('gt_score') is not None:
        return np.flatnonzero(np.asarray(data_info['gt_score']) >= 0.5).tolist()
    label = data_info.get('gt_label')
    if isinstance(label, (list, tuple, np.ndarray)):
        return [int(index) for index in label]
    return None if label is None else int(label)


def few_shot_indices(labels: Sequence[Union[int, Sequence[int]]],
                     fraction: float,
                     seed: int = 0,
                     stratify: bool = True) -> List[int]:
    """Choose ``fraction`` of the samples, reproducibly.

    Without ``stratify``, a uniformly random ``max(1, round(fraction * N))`` samples.
    With ``stratify`` (default):

    - single-label (``labels`` are ints): ``max(1, round(fraction * N_c))`` samples of each
      class c, so every class keeps its share and at least one sample;
    - multi-label (``labels`` are lists of classes): one sample for every class that has a
      positive, rarest class first, then random samples up to ``round(fraction * N)``. With
      more classes than that budget the subset is larger than the fraction.

    Args:
        labels: Per sample its class index (single-label) or its positive classes.
        fraction: Share of the samples to keep, in (0, 1].
        seed: Seed of the random choice.
        stratify: Keep every class represented (see above).

    Returns:
        list[int]: Sorted indices into ``labels``.
    """
    if not 0 < fraction <= 1:
        raise ValueError(f'few-shot fraction must be in (0, 1], got {fraction}')
    rng = np.random.default_rng(seed)
    num_samples = len(labels)
    budget = max(1, round(fraction * num_samples))
    order = rng.permutation(num_samples)
    if not stratify:
        return sorted(order[:budget].tolist())
    if all(isinstance(label, (int, np.integer)) for label in labels):
        labels = np.asarray(labels)
        chosen = []
        for cls in np.unique(labels):
            members = order[labels[order] == cls]  # the class's samples, in random order
            chosen += members[:max(1, round(fraction * len(members)))].tolist()
        return sorted(chosen)
    positives = {}
    for index in order:
        for cls in labels[index]:
            positives.setdefault(int(cls), []).append(int(index))
    chosen = set()
    for cls in sorted(positives, key=lambda c: (len(positives[c]), c)):
        if not chosen.intersection(positives[cls]):
            chosen.add(positives[cls][0])
    for index in order:
        if len(chosen) >= budget:
            break
        chosen.add(int(index))
    return sorted(chosen)


@DATASETS.register_module()
class FewShotDataset:
    """A seeded fraction of a dataset's samples, for few-shot transfer.

    Wraps any labelled dataset (the downstream datasets, ``ImageReportDataset``): after the
    wrapped dataset loads, :func:`few_shot_indices` chooses the samples from their labels
    (``gt_score`` or ``gt_label``). The choice depends only on the labels, ``fraction``,
    ``seed`` and ``stratify``, so every run, rank and worker sees the same subset::

        train_dataloader = dict(dataset=dict(
            type='FewShotDataset', fraction=0.01, seed=0,
            dataset=dict(type='RFMiDDataset', ...)))

    Args:
        dataset: The dataset or its config.
        fraction: Share of the samples to keep, in (0, 1] (0.01 for 1 %).
        seed: Seed of the choice. Defaults to 0.
        stratify: Keep every class represented (see :func:`few_shot_indices`). Defaults to
            True.
        lazy_init: Load the wrapped dataset only on first use. Defaults to False.
    """

    def __init__(self,
                 dataset: Union[BaseDataset, dict],
                 fraction: float,
                 seed: int = 0,
                 stratify: bool = True,
                 lazy_init: bool = False) -> None:
        if not 0 < fraction <= 1:
            raise ValueError(f'FewShotDataset: fraction must be in (0, 1], got {fraction} '
                             '(0.01 keeps 1 % of the samples)')
        self.dataset = DATASETS.build(dataset) if isinstance(dataset, dict) else dataset
        self.fraction = fraction
        self.seed = seed
        self.stratify = stratify
        self.indices: List[int] = []
        self._metainfo = self.dataset.metainfo
        self._fully_initialized = False
        if not lazy_init:
            self.full_init()

    @property
    def metainfo(self) -> dict:
        """The wrapped dataset's meta information."""
        return copy.deepcopy(self._metainfo)

    def full_init(self) -> None:
        """Load the wrapped dataset and choose the subset."""
        if self._fully_initialized:
            return
        self.dataset.full_init()
        infos = [self.dataset.get_data_info(index) for index in range(len(self.dataset))]
        labels = [sample_label(info) for info in infos]
        for index, label in enumerate(labels):
            if label is None:
                raise ValueError(f'FewShotDataset: sample {index} '
                                 f'({infos[index].get("img_path")}) has neither gt_score nor '
                                 'gt_label; few-shot subsets need a labelled dataset')
        self.indices = few_shot_indices(labels, self.fraction, self.seed, self.stratify)
        MMLogger.get_current_instance().info(
            f'FewShotDataset: {len(self.indices)} of {len(infos)} samples '
            f'(fraction {self.fraction:g}, seed {self.seed}, stratify={self.stratify})')
        self._fully_initialized = True

    @force_full_init
    def get_data_info(self, idx: int) -> dict:
        """The data info of the subset's sample ``idx``."""
        return self.dataset.get_data_info(self.indices[idx])

    @force_full_init
    def get_cat_ids(self, idx: int) -> List[int]:
        """Category ids of the subset's sample ``idx``."""
        label = sample_label(self.get_data_info(idx))
        return [label] if isinstance(label, int) else label

    def __getitem__(self, idx: int) -> dict:
        if not self._fully_initialized:
            self.full_init()
        return self.dataset[self.indices[idx]]

    @force_full_init
    def __len__(self) -> int:
        return len(self.indices)
