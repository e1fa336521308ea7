"""Few-shot subsets: few_shot_indices and the FewShotDataset wrapper."""
from collections import Counter

import numpy as np
import pytest
from mmpretrain.registry import DATASETS

from vilref_mm.datasets.downstream import FundusCSVDataset
from vilref_mm.datasets.few_shot import FewShotDataset, few_shot_indices, sample_label


def single_labels(counts):
    """Class index per sample: counts[c] samples of class c, interleaved."""
    labels = [cls for cls, count in enumerate(counts) for _ in range(count)]
    return np.random.default_rng(1).permutation(labels).tolist()


def test_single_label_subsets_are_stratified_and_seeded():
    labels = single_labels([500, 300, 150, 40, 10])
    chosen = few_shot_indices(labels, 0.1, seed=0)
    assert chosen == sorted(set(chosen))
    per_class = Counter(labels[index] for index in chosen)
    assert per_class == {0: 50, 1: 30, 2: 15, 3: 4, 4: 1}
    assert few_shot_indices(labels, 0.1, seed=0) == chosen
    assert few_shot_indices(labels, 0.1, seed=1) != chosen
    # a class too small for its share keeps one sample
    assert Counter(labels[i] for i in few_shot_indices(labels, 0.01))[4] == 1
    assert few_shot_indices(labels, 1.0) == list(range(len(labels)))


def test_multi_label_subsets_cover_every_class_then_fill_at_random():
    rng = np.random.default_rng(0)
    labels = [sorted(set(rng.choice(6, size=rng.integers(0, 3)).tolist())) for _ in range(400)]
    labels[17] = [6]  # a class with a single positive
    chosen = few_shot_indices(labels, 0.05, seed=3)
    assert len(chosen) == 20
    assert set().union(*(labels[i] for i in chosen)) == set(range(7))
    # more classes than the budget: one positive each, so more samples than the fraction
    tiny = few_shot_indices(labels, 0.001, seed=3)
    assert 1 < len(tiny) <= 7 and set().union(*(labels[i] for i in tiny)) == set(range(7))


def test_unstratified_subsets_are_plain_random_fractions():
    labels = single_labels([90, 10])
    chosen = few_shot_indices(labels, 0.2, seed=5, stratify=False)
    assert len(chosen) == 20 and chosen == few_shot_indices(labels, 0.2, 5, stratify=False)
    for fraction in (0, 1.5):
        with pytest.raises(ValueError, match='fraction'):
            few_shot_indices(labels, fraction)


def test_sample_labels_of_data_infos():
    assert sample_label(dict(gt_score=np.array([0, 0.5, 1, 0.2]))) == [1, 2]
    assert sample_label(dict(gt_label=[0, 3])) == [0, 3]
    assert sample_label(dict(gt_label=np.int64(2))) == 2
    assert sample_label(dict(img_path='unlabelled.png')) is None


@pytest.fixture
def grading_csv(tmp_path):
    """40 graded images: 20 of grade 0, 12 of grade 1, 8 of grade 2."""
    rows = [f'img{i:02d}.png,{grade}' for i, grade in enumerate([0] * 20 + [1] * 12 + [2] * 8)]
    path = tmp_path / 'grades.csv'
    path.write_text('image,grade\n' + '\n'.join(rows) + '\n')
    return path


def test_few_shot_dataset_wraps_a_dataset(grading_csv):
    cfg = dict(type='FundusCSVDataset', ann_file=str(grading_csv), label_column='grade',
               metainfo=dict(classes=('g0', 'g1', 'g2')), data_prefix=str(grading_csv.parent))
    subset = DATASETS.build(dict(type='FewShotDataset', fraction=0.25, seed=0, dataset=cfg))
    full = FundusCSVDataset(**{k: v for k, v in cfg.items() if k != 'type'})
    assert len(subset) == 10 and subset.metainfo['classes'] == ('g0', 'g1', 'g2')
    grades = [subset.get_data_info(i)['gt_label'] for i in range(len(subset))]
    assert Counter(grades) == {0: 5, 1: 3, 2: 2}
    assert [subset.get_cat_ids(i) for i in range(3)] == [[g] for g in grades[:3]]
    original = {full.get_data_info(i)['img_path'] for i in subset.indices}
    assert {subset[i]['img_path'] for i in range(len(subset))} == original  # no pipeline

    lazy = FewShotDataset(cfg, fraction=0.25, seed=0, lazy_init=True)
    assert lazy.indices == [] and len(lazy) == 10 and lazy.indices == subset.indices
    with pytest.raises(ValueError, match='fraction'):
        FewShotDataset(cfg, fraction=25)
