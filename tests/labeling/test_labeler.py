"""Rules of the report labeler (docs/labels.md) on a hand-written gold set of reports."""
import json
import logging
import pickle
from pathlib import Path

import numpy as np
import pytest

from vilref_mm.labeling import Mention, ReportLabeler

GOLD = [json.loads(line) for line in
        (Path(__file__).with_name('gold_reports.jsonl')).read_text(encoding='utf-8').splitlines()]
# The label keys of /work/shared/design/labels.md, in its table order (a public interface).
SPEC_KEYS = (
    'normal', 'diabetic_retinopathy', 'glaucoma', 'cup_enlargement', 'amd', 'drusen', 'rvo', 'rao',
    'pathologic_myopia', 'tessellated_fundus', 'hypertensive_retinopathy', 'retinal_detachment',
    'macular_hole', 'epiretinal_membrane', 'macular_edema', 'optic_atrophy', 'papilledema',
    'rnfl_defect', 'hemorrhage', 'hard_exudate', 'cotton_wool_spot', 'microaneurysm',
    'laser_scar', 'chorioretinal_atrophy', 'vitreous_opacity')


@pytest.fixture(scope='module')
def labeler():
    return ReportLabeler()


def expected_vector(labels: dict) -> np.ndarray:
    vector = np.zeros(len(SPEC_KEYS), dtype=np.float32)
    for key, value in labels.items():
        vector[SPEC_KEYS.index(key)] = value
    return vector


def test_classes_are_the_spec_keys(labeler):
    assert labeler.classes == SPEC_KEYS


def test_gold_set_covers_every_label_and_value():
    assert len(GOLD) >= 80
    assert {key for record in GOLD for key in record['labels']} == set(SPEC_KEYS)
    assert {value for record in GOLD for value in record['labels'].values()} == {0.5, 1}
    assert {record['eye'] for record in GOLD} == {None, 'left', 'right'}


@pytest.mark.parametrize('record', GOLD, ids=[f"{r['id']}-{r['rule']}" for r in GOLD])
def test_gold_report(labeler, record):
    vector = labeler(record['report'], eye=record['eye'])
    assert vector.dtype == np.float32 and vector.shape == (len(SPEC_KEYS), )
    expected = expected_vector(record['labels'])
    found = {key: float(value) for key, value in zip(SPEC_KEYS, vector) if value}
    assert np.array_equal(vector, expected), f'{record["report"]!r}: got {found}'


def test_explain_lists_mentions_with_clause_cue_and_value(labeler):
    mentions = labeler.explain('视网膜未见出血及渗出，考虑糖尿病视网膜病变')
    assert all(isinstance(mention, Mention) for mention in mentions)
    assert [(m.label, m.value, m.term, m.cue, m.clause) for m in mentions] == [
        ('hemorrhage', 0.0, '出血', '未见', '视网膜未见出血及渗出'),
        ('hard_exudate', 0.0, '渗出', '未见', '视网膜未见出血及渗出'),
        ('diabetic_retinopathy', 0.5, '糖尿病视网膜病变', '考虑', '考虑糖尿病视网膜病变'),
    ]


def test_explain_marks_implications_sites_numbers_and_absence(labeler):
    mentions = labeler.explain('PDR，黄斑区轻度水肿，C/D约0.7，视网膜平伏')
    by_label = {mention.label: mention for mention in mentions}
    assert by_label['diabetic_retinopathy'].implied
    assert by_label['diabetic_retinopathy'].term == 'pdr'
    assert by_label['macular_edema'].site == '黄斑' and by_label['macular_edema'].term == '水肿'
    assert by_label['cup_enlargement'].value == 1.0
    assert by_label['cup_enlargement'].term == '杯盘比约0.7'
    assert by_label['retinal_detachment'].value == 0.0
    assert by_label['retinal_detachment'].cue is None


def test_explain_keeps_laterality_and_filters_by_eye(labeler):
    report = '右眼视网膜出血，黄斑水肿。左眼黄斑前膜。双眼玻璃体混浊'
    eyes = {mention.label: mention.eye for mention in labeler.explain(report)}
    assert eyes == {'hemorrhage': 'right', 'macular_edema': 'right',
                    'epiretinal_membrane': 'left', 'vitreous_opacity': 'both'}
    left = {mention.label for mention in labeler.explain(report, eye='left')}
    assert left == {'epiretinal_membrane', 'vitreous_opacity'}


@pytest.mark.parametrize('record', GOLD[:40], ids=[str(r['id']) for r in GOLD[:40]])
def test_vector_is_the_maximum_over_explained_mentions(labeler, record):
    vector = labeler(record['report'], eye=record['eye'])
    maxima = np.zeros_like(vector)
    for mention in labeler.explain(record['report'], eye=record['eye']):
        index = SPEC_KEYS.index(mention.label)
        maxima[index] = max(maxima[index], mention.value)
    abnormal = slice(1, None)
    assert np.array_equal(vector[abnormal], maxima[abnormal])
    assert vector[0] == (1.0 if maxima[0] > 0 and not maxima[abnormal].any() else 0.0)


def test_empty_report_has_no_finding(labeler):
    assert not labeler('').any() and labeler.explain('   ') == []


def test_bad_arguments_are_rejected(labeler):
    with pytest.raises(ValueError, match='eye'):
        labeler('视网膜出血', eye='OD')
    with pytest.raises(TypeError, match='string'):
        labeler(None)


def test_cache_does_not_change_results_and_is_bounded():
    cached, uncached = ReportLabeler(cache_size=3), ReportLabeler(cache_size=0)
    for record in GOLD:
        assert np.array_equal(cached(record['report'], record['eye']),
                              uncached(record['report'], record['eye']))
        assert len(cached._cache) <= 3
    assert not uncached._cache


def test_labeler_pickles_after_use(labeler):
    report = '右眼视网膜分支静脉阻塞，黄斑囊样水肿'
    expected = labeler(report)
    restored = pickle.loads(pickle.dumps(labeler))
    assert np.array_equal(restored(report), expected)


def test_private_quiet_tokenizer(labeler):
    import jieba
    labeler('视网膜出血')
    assert not jieba.dt.initialized, 'the global jieba dictionary must not be loaded'
    assert labeler._tokenizer is not jieba.dt
    assert logging.getLogger('jieba').level == logging.WARNING


def test_longest_term_wins_inside_longer_words(labeler):
    tokens = labeler._segment('视盘色淡红，视盘边界清色淡红，黄斑区软性渗出，玻璃体积血')
    assert '视盘色淡红' in tokens and '色淡红' in tokens
    assert '视盘色淡' not in tokens and '色淡' not in tokens
    assert '软性渗出' in tokens and '渗出' not in tokens
    assert '玻璃体积血' in tokens and '积血' not in tokens
