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


# English-only reports and their Chinese equivalents: the same vector for every eye.
ENGLISH_AND_CHINESE = [
    ('OD: no DR. OS: NPDR, DME (-)',
     '右眼：未见糖尿病视网膜病变。左眼：非增殖期糖尿病视网膜病变，糖尿病性黄斑水肿(-)'),
    ('no glaucoma, no AMD', '无青光眼，无年龄相关性黄斑变性'),
    ('Normal fundus, no DR', '正常眼底，未见糖尿病视网膜病变'),
    ('No hemorrhage, exudate or DR.', '未见出血、渗出或糖尿病视网膜病变。'),
    ('No hemorrhages, hard exudates, or microaneurysms', '未见出血、硬性渗出或微血管瘤'),
    ('r/o BRVO', '视网膜分支静脉阻塞待排'),
    ('Drusen OU, ?AMD', '双眼玻璃膜疣，可疑年龄相关性黄斑变性'),
    ('CRAO ruled out', '已排除视网膜中央动脉阻塞'),
    ('Negative for PDR, possible BRVO', '无增殖期糖尿病视网膜病变，可疑视网膜分支静脉阻塞'),
    ('DR (+), DME (-)', '糖尿病视网膜病变(+)，糖尿病性黄斑水肿(-)'),
    ('Suspected glaucoma, cup-to-disc ratio 0.7', '可疑青光眼，杯盘比0.7'),
    ('Fundus WNL OU', '双眼眼底未见异常'),
    ('No DR; RNFLD absent', '未见糖尿病视网膜病变；视网膜神经纤维层缺损未见'),
    ('PDR without vitreous hemorrhage', '增殖期糖尿病视网膜病变，不伴玻璃体积血'),
    ('CME cannot be excluded', '不除外黄斑囊样水肿'),
    ('DR not excluded', '糖尿病视网膜病变不除外'),
    ('?POAG', '可疑原发性开角型青光眼'),
    ('Impression: mild NPDR OU without DME', '诊断：双眼轻度非增殖期糖尿病视网膜病变，无黄斑水肿'),
    ('Denies glaucoma', '否认青光眼'),
    ('Hemorrhages and exudates absent', '出血及渗出未见'),
    ('No PDR but microaneurysms', '未见增殖期糖尿病视网膜病变但可见微血管瘤'),
    ('suspected DR, DME or RVO', '可疑糖尿病视网膜病变、糖尿病性黄斑水肿或视网膜静脉阻塞'),
    ('BRVO OS, ERM OD', '视网膜分支静脉阻塞（左眼），黄斑前膜（右眼）'),
    ('Laser scars (OD), OS WNL', '激光斑（右眼），左眼未见异常'),
    ('NPDR in the left eye', '非增殖期糖尿病视网膜病变（左眼）'),
    ('OD: BRVO, macular edema. OS same as OD', '右眼：视网膜分支静脉阻塞，黄斑水肿。左眼同右眼'),
]


@pytest.mark.parametrize('english, chinese', ENGLISH_AND_CHINESE,
                         ids=[english for english, _ in ENGLISH_AND_CHINESE])
def test_english_report_labels_like_its_chinese_equivalent(labeler, english, chinese):
    for eye in (None, 'left', 'right'):
        vector, expected = labeler(english, eye), labeler(chinese, eye)
        found = {key: float(value) for key, value in zip(SPEC_KEYS, vector) if value}
        assert np.array_equal(vector, expected), f'eye {eye}: got {found}'


def test_english_phrases_become_one_word(labeler):
    normalize = labeler.lexicon.normalize
    assert normalize('Negative  for DR, R/O AMD, CRAO ruled out') == \
        'negative_for dr, rule_out amd, crao ruled_out'
    assert normalize('Cup-to-disc ratio 0.7') == '杯盘比 0.7'
    assert normalize('no changes') == 'no changes', 'a phrase matches whole words only'


def test_english_negation_covers_a_list_across_commas(labeler):
    mentions = labeler.explain('No hemorrhage, exudate or DR')
    assert [(m.label, m.value, m.cue, m.clause) for m in mentions] == [
        ('hemorrhage', 0.0, 'no', 'no hemorrhage'),
        ('hard_exudate', 0.0, 'no', 'exudate or dr'),
        ('diabetic_retinopathy', 0.0, 'no', 'exudate or dr'),
    ]


def test_latin_cues_and_terms_match_whole_words(labeler):
    for report in ('Normal disc, NPDR', 'Nodular drusen, NPDR', 'Knots, DR', 'Cannot see, DR'):
        mentions = labeler.explain(report)
        assert all(m.cue is None and m.value == 1.0 for m in mentions), report
    assert [m.term for m in labeler.explain('NPDR, CDR 0.3')] == ['npdr', '杯盘比0.3']


def test_explain_shows_findings_taken_from_the_other_eye(labeler):
    mentions = labeler.explain('右眼视网膜出血。左眼同右眼')
    assert [(m.label, m.term, m.eye, m.clause) for m in mentions] == [
        ('hemorrhage', '视网膜出血', 'right', '右眼视网膜出血'),
        ('hemorrhage', '视网膜出血', 'left', '左眼同右眼'),
    ]
    assert [m.eye for m in labeler.explain('右眼视网膜出血。左眼同右眼', eye='left')] == ['left']


def test_marker_after_its_finding_names_its_eye(labeler):
    mentions = labeler.explain('激光斑（右眼），左眼未见异常，drusen OU')
    assert [(m.label, m.eye) for m in mentions] == [
        ('laser_scar', 'right'), ('normal', 'left'), ('drusen', 'both')]
