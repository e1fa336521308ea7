"""Lexicon files: the default one, a user's extension, and clear errors on malformed files."""
import numpy as np
import pytest

from vilref_mm.labeling import DEFAULT_LEXICON, LexiconError, ReportLabeler, load_lexicon


def write(tmp_path, text, name='lexicon.yaml'):
    path = tmp_path / name
    path.write_text(text, encoding='utf-8')
    return path


def test_default_lexicon_ships_in_the_package():
    assert DEFAULT_LEXICON.name.endswith('.yaml')
    assert DEFAULT_LEXICON.parent.name == 'labeling' and DEFAULT_LEXICON.is_file()
    lexicon = load_lexicon()
    assert len(lexicon.classes) == 25 and lexicon.names['glaucoma'] == '青光眼'
    assert lexicon.terms['npdr'] == (('diabetic_retinopathy', True), )


def test_user_lexicon_adds_a_label_without_code(tmp_path):
    path = write(tmp_path, '''
extends: default
labels:
  myelinated_nerve_fiber:
    name: 视网膜有髓神经纤维
    terms: [有髓神经纤维, 有髓鞘神经纤维]
  hemorrhage:
    terms: [血斑]
''')
    labeler = ReportLabeler(path)
    assert labeler.classes[:25] == load_lexicon().classes
    assert labeler.classes[25] == 'myelinated_nerve_fiber'
    labels = dict(zip(labeler.classes, labeler('视盘旁可见有髓神经纤维，视网膜少量血斑')))
    assert labels['myelinated_nerve_fiber'] == 1.0 and labels['hemorrhage'] == 1.0
    negated = dict(zip(labeler.classes, labeler('未见有髓神经纤维')))
    assert negated['myelinated_nerve_fiber'] == 0.0
    # The default labeler, alive in the same process, does not know the new words.
    default = ReportLabeler()
    assert not default('视网膜少量血斑').any()
    assert labeler('视网膜少量血斑')[labeler.classes.index('hemorrhage')] == 1.0


def test_standalone_lexicon(tmp_path):
    path = write(tmp_path, '''
labels:
  normal: {terms: [眼底正常]}
  hemorrhage: {terms: [出血], absent: [无出血灶]}
  cup_enlargement: {terms: [C/D增大]}
implications:
  出血斑: [hemorrhage]
ratios:
  cup_enlargement: {anchors: [C/D], levels: [[0.7, 1.0]]}
rewrites: {c/d: 杯盘比}
cues: {negation: [未见], uncertainty: [可疑]}
''')
    labeler = ReportLabeler(path)
    assert labeler.classes == ('normal', 'hemorrhage', 'cup_enlargement')
    assert labeler('眼底正常').tolist() == [1, 0, 0]
    assert labeler('可疑出血斑，c/d 0.6').tolist() == [0, 0.5, 0]
    assert labeler('未见出血，Ｃ／Ｄ增大').tolist() == [0, 0, 1]
    assert labeler('杯盘比0.7').tolist() == [0, 0, 1]


def test_user_phrases_and_references_to_the_other_eye(tmp_path):
    path = write(tmp_path, '''
extends: default
cues:
  negation: [free from]
  same_as: [like]
''')
    labeler = ReportLabeler(path)
    assert 'free_from' in labeler.lexicon.negation and 'like' in labeler.lexicon.same_as
    dr = labeler.classes.index('diabetic_retinopathy')
    assert labeler('Free  from DR')[dr] == 0.0 and labeler('likely DR')[dr] == 0.5
    assert labeler('OD: BRVO. OS like OD', eye='left')[labeler.classes.index('rvo')] == 1.0


@pytest.mark.parametrize('text, field, hint', [
    ('labels: []', 'labels', 'mapping'),
    ('version: 1', 'labels', 'at least one label'),
    ('labels: {hemorrhage: {terms: 出血}}', 'labels.hemorrhage.terms', 'list'),
    ('labels: {hemorrhage: {terms: [出血, 3]}}', 'labels.hemorrhage.terms[1]', 'non-empty string'),
    ('labels: {Hemorrhage: {terms: [出血]}}', 'labels.Hemorrhage', 'lower-case'),
    ('labels: {hemorrhage: {terms: [出血], synonyms: [x]}}', 'labels.hemorrhage.synonyms',
     'unknown field'),
    ('labels: {a: {terms: [出血]}, b: {terms: [出血]}}', 'labels.b.terms', "also a term of 'a'"),
    ('labels: {a: {terms: [视网膜/出血]}}', 'labels.a.terms[0]', "'/'"),
    ('labels: {a: {terms: [视网膜 出血]}}', 'labels.a.terms[0]', "' '"),
    ('labels: {a: {terms: [rule/out x]}}', 'labels.a.terms[0]', "'/'"),
    ('labels: {a: {terms: [出血]}}\ncues: {negation: [no]}', 'cues.negation[0]', 'quote'),
    ('labels: {a: {terms: [出血]}}\nneutral: [出血]', 'neutral[0]', 'one role'),
    ('labels: {a: {terms: [出血]}}\nimplications: {积血: [b]}', 'implications.积血[0]',
     "'b' is not a label"),
    ('labels: {a: {terms: [出血]}}\nratios: {a: {anchors: [c/d], levels: [[0.6, 2]]}}',
     'ratios.a.levels', '[threshold, value]'),
    ('labels: {a: {terms: [出血]}}\nsite_terms: {水肿: {at: {黄斑: a}}}',
     'site_terms.水肿.at.黄斑', 'not a site'),
    ('labels: {a: {terms: [出血]}}\ncues: {negative: [无]}', 'cues.negative', 'unknown cue type'),
    ('labels: {a: {terms: [出血]}}\nlabel: {}', 'label', 'unknown field'),
])
def test_malformed_lexicon_names_file_and_field(tmp_path, text, field, hint):
    path = write(tmp_path, text)
    with pytest.raises(LexiconError) as error:
        load_lexicon(path)
    message = str(error.value)
    assert str(path) in message and field in message and hint in message


@pytest.mark.parametrize('text, hint', [
    ('labels: {a: [', 'not a valid UTF-8 YAML file'),
    ('extends: missing.yaml\nlabels: {}', 'does not exist'),
    ('extends: lexicon.yaml', 'cycle'),
])
def test_unreadable_lexicon_names_the_file(tmp_path, text, hint):
    path = write(tmp_path, text)
    with pytest.raises(LexiconError, match=hint) as error:
        ReportLabeler(path)
    assert str(tmp_path) in str(error.value)


def test_missing_lexicon_file(tmp_path):
    with pytest.raises(LexiconError, match='does not exist'):
        load_lexicon(tmp_path / 'nowhere.yaml')


def test_lexicon_object_is_accepted():
    lexicon = load_lexicon()
    assert np.array_equal(ReportLabeler(lexicon)('糖网'), ReportLabeler()('糖网'))
