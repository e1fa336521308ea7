"""Zero-shot prompts, prototypes, scores and data samples; the zero-shot configs."""
import zlib
from pathlib import Path

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.config import Config
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample

import vilref_mm.models  # noqa: F401  registers ViLReF
from vilref_mm.datasets import downstream
from vilref_mm.evaluation import (DEFAULT_PROMPTS, PromptError, ZeroShotClassifier,
                                  build_prototypes, load_prompt_file, resolve_class_names,
                                  resolve_templates, set_predictions)
from vilref_mm.labeling import ReportLabeler

ROOT = Path(__file__).parents[2]
DIM = 8


class StubTextModel(nn.Module):
    """A text encoder whose embedding of a text is a fixed random unit vector (plus a
    learnable offset), counting the texts it encodes."""

    def __init__(self):
        super().__init__()
        self.offset = nn.Parameter(torch.zeros(DIM))
        self.logit_scale = nn.Parameter(torch.tensor(2.0))
        self.encoded = []
        self.modes = []

    def raw(self, text: str) -> torch.Tensor:
        generator = torch.Generator().manual_seed(zlib.crc32(text.encode()))
        return torch.randn(DIM, generator=generator)

    def extract_text_feat(self, texts):
        self.encoded.extend(texts)
        self.modes.append(self.training)
        return F.normalize(torch.stack([self.raw(t) for t in texts]) + self.offset, dim=-1)


def expected_prototype(model, names, templates):
    feats = model.extract_text_feat([t.replace('{}', n) for n in names for t in templates])
    return F.normalize(feats.mean(0), dim=0)


def test_default_prompts_cover_the_default_label_set():
    prompts = load_prompt_file()
    assert set(prompts['class_names']) == set(ReportLabeler().classes)
    assert 6 <= len(prompts['templates']) <= 10
    assert all(t.count('{}') == 1 for t in prompts['templates'])
    assert resolve_class_names(['hemorrhage'])['hemorrhage'][:2] == ['视网膜出血', '出血']
    assert resolve_templates() == prompts['templates']


def test_prototypes_are_normalised_means_over_templates_and_names():
    model = StubTextModel().train()
    names = {'glaucoma': ['青光眼', '视杯扩大'], 'normal': ['正常眼底']}
    templates = ['{}。', '眼底照片显示{}。', '诊断：{}。']
    prototypes = build_prototypes(model, names, templates, batch_size=4)
    assert prototypes.shape == (2, DIM)
    assert model.modes == [False] * 3 and model.training  # eval inside, restored after
    assert len(model.encoded) == 9 and '眼底照片显示视杯扩大。' in model.encoded
    torch.testing.assert_close(prototypes.norm(dim=-1), torch.ones(2))
    for row, key in enumerate(names):
        torch.testing.assert_close(prototypes[row],
                                   expected_prototype(model, names[key], templates))
    assert not prototypes.requires_grad


def test_prototypes_are_cached_until_prompts_or_weights_change():
    model = StubTextModel()
    classifier = ZeroShotClassifier({'a': '甲', 'b': ['乙', '丙']}, templates=['{}', '见{}'],
                                    mode='multiclass')
    first = classifier.prototypes(model)
    assert len(model.encoded) == 6
    assert classifier.prototypes(model) is first and len(model.encoded) == 6
    with torch.no_grad():
        model.offset.add_(0.5)  # an optimizer step
    updated = classifier.prototypes(model)
    assert len(model.encoded) == 12 and not torch.allclose(updated, first)
    model.load_state_dict({'offset': torch.zeros(DIM), 'logit_scale': torch.tensor(2.)})
    torch.testing.assert_close(classifier.prototypes(model), first)
    assert len(model.encoded) == 18
    classifier.set_prompts(templates=['{}'])
    assert classifier.prototypes(model).shape == (2, DIM) and len(model.encoded) == 21
    classifier.set_prompts(class_names={'c': '丁'})
    assert classifier.classes == ('c', ) and classifier.prototypes(model).shape == (1, DIM)
    assert model.encoded[-1] == '丁'


def image_feats(num: int = 5) -> torch.Tensor:
    return F.normalize(torch.randn(num, DIM, generator=torch.Generator().manual_seed(1)),
                       dim=-1)


def test_multiclass_scores_are_a_softmax_over_classes():
    model = StubTextModel()
    classifier = ZeroShotClassifier(['normal', 'glaucoma', 'amd'], mode='multiclass')
    feats = image_feats()
    prototypes = classifier.prototypes(model)
    assert prototypes.shape == (3, DIM)  # no extra normal reference
    scores = classifier.scores(feats, prototypes, 7.)
    assert scores.dtype == torch.float64
    torch.testing.assert_close(scores, (7. * feats @ prototypes.t()).double().softmax(-1))
    torch.testing.assert_close(scores.sum(-1), torch.ones(5, dtype=torch.float64))


def test_multilabel_scores_against_the_normal_class():
    model = StubTextModel()
    classifier = ZeroShotClassifier(['normal', 'glaucoma', 'amd'])
    assert classifier.multilabel_score == 'normal' and classifier.normal_index == 0
    feats, scale = image_feats(), 5.
    prototypes = classifier.prototypes(model)
    scores = classifier.scores(feats, prototypes, scale)
    logits = (scale * feats @ prototypes.t()).double()
    for c in (1, 2):
        pair = torch.stack([logits[:, c], logits[:, 0]], dim=-1).softmax(-1)[:, 0]
        torch.testing.assert_close(scores[:, c], pair)
    best_other = logits[:, 1:].max(-1).values
    torch.testing.assert_close(
        scores[:, 0], torch.stack([logits[:, 0], best_other], -1).softmax(-1)[:, 0])


def test_multilabel_normal_reference_when_normal_is_not_a_class():
    model = StubTextModel()
    templates = ['{}。']
    classifier = ZeroShotClassifier({'DR': '糖尿病视网膜病变', 'MH': '屈光间质混浊'},
                                    templates=templates)
    prototypes = classifier.prototypes(model)
    assert prototypes.shape == (3, DIM) and classifier.normal_index == 2
    normal = expected_prototype(model, load_prompt_file()['class_names']['normal'], templates)
    torch.testing.assert_close(prototypes[2], normal)
    feats = image_feats()
    scores = classifier.scores(feats, prototypes, 3.)
    assert scores.shape == (5, 2)
    torch.testing.assert_close(
        scores,
        torch.sigmoid(3. * feats @ prototypes[:2].t() - 3. * (feats @ normal)[:, None]).double())
    custom = ZeroShotClassifier({'DR': '糖网'}, templates=templates, normal=['未见异常'])
    torch.testing.assert_close(custom.prototypes(model)[1],
                               expected_prototype(model, ['未见异常'], templates))


def test_multilabel_sigmoid_scores():
    model = StubTextModel()
    classifier = ZeroShotClassifier(['glaucoma', 'amd'], multilabel_score='sigmoid',
                                    sigmoid_bias=-1.)
    prototypes = classifier.prototypes(model)
    assert prototypes.shape == (2, DIM)
    feats = image_feats()
    torch.testing.assert_close(classifier.scores(feats, prototypes, 4.),
                               torch.sigmoid((4. * feats @ prototypes.t()).double() - 1.))


def test_confident_scores_do_not_tie_and_ignore_autocast():
    """Float32 probabilities of similarity gaps above ~17 (scale 100) all round to 1.0."""
    classifier = ZeroShotClassifier({'a': '甲', 'b': '乙'}, templates=['{}'], mode='multiclass')
    prototypes = torch.eye(DIM)[:2]
    # unit vectors whose cosines to the two prototypes differ by 0.3, 0.25, 0.2
    angles = torch.arccos(torch.tensor([0.3, 0.25, 0.2]) / 2**0.5) - torch.pi / 4
    feats = torch.zeros(3, DIM)
    feats[:, 0], feats[:, 1] = angles.cos(), angles.sin()
    assert (((100. * feats @ prototypes.t()).softmax(-1)[:, 0]) == 1).all()  # float32 ties
    with torch.autocast('cpu', dtype=torch.bfloat16):
        scores = classifier.scores(feats, prototypes, 100.)
    assert scores.dtype == torch.float64
    assert scores[0, 0] > scores[1, 0] > scores[2, 0]
    torch.testing.assert_close(scores, (100. * feats @ prototypes.t()).double().softmax(-1))


def test_predict_fills_data_samples():
    model = StubTextModel()
    feats = image_feats(3)
    classifier = ZeroShotClassifier(['normal', 'glaucoma'], mode='multiclass')
    samples = [DataSample().set_gt_label(1) for _ in range(3)]
    out = classifier.predict(model, feats, samples)
    assert out is samples
    expected = classifier.scores(feats, classifier.prototypes(model), model.logit_scale.exp())
    for sample, score in zip(out, expected):
        torch.testing.assert_close(sample.pred_score, score)
        assert sample.pred_label.tolist() == [int(score.argmax())]
    multilabel = ZeroShotClassifier(['normal', 'glaucoma', 'amd']).predict(model, feats)
    assert len(multilabel) == 3 and multilabel[0].pred_score.shape == (3, )
    assert 'pred_label' not in multilabel[0]


def test_predictions_must_match_the_dataset_classes():
    samples = [DataSample().set_gt_score(torch.tensor([0., 1., 0.]))]
    with pytest.raises(ValueError, match='dataset gives 3 classes but zero_shot.class_names '
                                         'has 2'):
        set_predictions(torch.rand(1, 2), samples, 'multilabel')


def test_prompt_files_and_bad_prompts(tmp_path):
    path = tmp_path / 'my_prompts.yaml'
    path.write_text("templates: ['所见：{}']\n"
                    'class_names:\n  dr: 糖网\n  g: [青光眼, 视杯扩大]\n', encoding='utf-8')
    classifier = ZeroShotClassifier(str(path), templates=str(path), mode='multiclass')
    assert classifier.class_names == {'dr': ['糖网'], 'g': ['青光眼', '视杯扩大']}
    assert classifier.templates == ['所见：{}']
    with pytest.raises(PromptError, match="exactly one '{}'"):
        ZeroShotClassifier(['glaucoma'], templates=['没有占位符'])
    with pytest.raises(PromptError, match='not label keys'):
        ZeroShotClassifier(['glaucoma', 'DRX'])
    (tmp_path / 'names.yaml').write_text('class_names: {a: 甲}\n', encoding='utf-8')
    with pytest.raises(PromptError, match="no 'templates' section"):
        resolve_templates(tmp_path / 'names.yaml')
    (tmp_path / 'bad.yaml').write_text('classes: {a: 甲}\n', encoding='utf-8')
    with pytest.raises(PromptError, match='bad.yaml: unknown sections'):
        load_prompt_file(tmp_path / 'bad.yaml')
    with pytest.raises(PromptError, match='mode'):
        ZeroShotClassifier(['glaucoma'], mode='binary')
    with pytest.raises(PromptError, match='needs a class besides'):
        ZeroShotClassifier(['normal'])
    with pytest.raises(PromptError, match='non-empty list of names'):
        ZeroShotClassifier({'a': []})
    assert DEFAULT_PROMPTS.is_file()


TINY_BERT = dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=2,
                 intermediate_size=128, hidden_dropout_prob=0., attention_probs_dropout_prob=0.)
TINY_MODEL = dict(
    type='ViLReF',
    image_encoder=dict(
        type='ViLReFViT',
        arch=dict(embed_dims=64, num_layers=2, num_heads=2, feedforward_channels=128),
        img_size=32,
        patch_size=16),
    text_encoder=dict(type='ChineseBertEncoder', bert_cfg=TINY_BERT),
    embed_dims=32,
    tokenizer=dict(type='ChineseBertTokenizer', context_length=24))

CONFIG_DATASETS = {
    'rfmid': downstream.RFMiDDataset,
    'odir5k': downstream.ODIRDataset,
    'refuge-glaucoma': downstream.REFUGEGlaucomaDataset,
    'messidor': None,  # classes depend on the target
    'fives': downstream.FIVESDataset,
}


@pytest.mark.parametrize('name', sorted(CONFIG_DATASETS))
def test_zero_shot_configs(name):
    cfg = Config.fromfile(ROOT / f'configs/zero_shot/vilref_vit-b16_zero-shot_{name}-224px.py')
    classifier = ZeroShotClassifier(**cfg.model.zero_shot)
    dataset = CONFIG_DATASETS[name]
    classes = (dataset.METAINFO['classes'] if dataset else
               downstream.MESSIDOR_TARGETS[cfg.test_dataloader.dataset.target][1])
    assert classifier.classes == tuple(classes)
    assert cfg.model.type == 'ViLReF' and cfg.test_evaluator[0]['type'] == 'AUROC'
    assert cfg.test_pipeline[1]['interpolation'] == 'bicubic'


def test_fives_config_end_to_end_with_a_tiny_vilref(tmp_path):
    """Config dataset + pipeline -> preprocessor -> image features -> classifier -> metrics."""
    import cv2
    import numpy as np
    from mmengine.dataset import pseudo_collate
    from mmengine.evaluator import Evaluator
    from mmpretrain.registry import DATASETS, METRICS

    folder = tmp_path / 'test' / 'Original'
    folder.mkdir(parents=True)
    for index, letter in enumerate('NADGNADG'):
        cv2.imwrite(str(folder / f'{index + 1}_{letter}.png'),
                    np.full((40, 48, 3), 30 * index, np.uint8))
    cfg = Config.fromfile(ROOT / 'configs/zero_shot/vilref_vit-b16_zero-shot_fives-224px.py')
    dataset_cfg = cfg.test_dataloader.dataset
    dataset_cfg.data_root = str(tmp_path)
    dataset_cfg.pipeline[1]['scale'] = (32, 32)
    dataset = DATASETS.build(dataset_cfg)
    model = MODELS.build(TINY_MODEL).eval()
    classifier = ZeroShotClassifier(**cfg.model.zero_shot)
    evaluator = Evaluator([METRICS.build(metric) for metric in cfg.test_evaluator])
    evaluator.dataset_meta = dataset.metainfo
    for start in (0, 4):
        batch = model.data_preprocessor(pseudo_collate([dataset[i]
                                                        for i in range(start, start + 4)]))
        with torch.no_grad():
            feats = model.extract_image_feat(batch['inputs']['images'])
        samples = classifier.predict(model, feats, batch['data_samples'])
        evaluator.process(samples)
    results = evaluator.evaluate(len(dataset))
    assert {'auroc/macro', 'auroc/glaucoma', 'accuracy/top1',
            'single-label/f1-score'} <= set(results)
    assert 0 <= results['auroc/macro'] <= 100 and results['auroc/skipped'] == 0
