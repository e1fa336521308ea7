"""The inference API on a tiny random ViLReF: mmpretrain's get_model, the ZeroShotInferencer and
the ViLReFFeatureExtractor against the model's own test path, init_model's checkpoint rule,
retrieval."""
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from mmcv.transforms import Compose
from mmengine.config import Config
from mmengine.dataset import pseudo_collate
from mmengine.logging import HistoryBuffer
from mmengine.registry import INFERENCERS, DefaultScope
from mmpretrain.apis import ModelHub, get_model
from mmpretrain.registry import MODELS, TRANSFORMS
from mmpretrain.visualization import UniversalVisualizer

from vilref_mm.apis import (ViLReFFeatureExtractor, ZeroShotInferencer, collect_images,
                            init_model, retrieve)
from vilref_mm.apis import zero_shot_inferencer as zero_shot_module
from vilref_mm.apis.base import build_image_pipeline
from vilref_mm.evaluation import DEFAULT_PROMPTS, PromptError, load_prompt_file
from vilref_mm.models import ViLReF
from vilref_mm.utils.checkpoint import IncompleteWeightsError, save_tensor_checkpoint

TEXTS = ['视盘水肿', '正常眼底', '糖尿病视网膜病变']
CLASSES = ['normal', 'glaucoma', 'drusen']


def loader_batch(files) -> dict:
    """The images as tools/test.py's dataloader gives them to ``model.test_step``:
    mmpretrain's LoadImageFromFile, the tiny config's Resize, PackInputs."""
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        pipeline = Compose([TRANSFORMS.build(t) for t in [
            dict(type='LoadImageFromFile'),
            dict(type='Resize', scale=(32, 32), interpolation='bicubic', backend='pillow'),
            dict(type='PackInputs')]])
    return pseudo_collate([pipeline(dict(img_path=file)) for file in files])


def loader_scores(model, files) -> np.ndarray:
    """(N, C) zero-shot scores of ``model.test_step`` (ViLReF.predict with model.zero_shot)."""
    return torch.stack([sample.pred_score for sample in
                        model.test_step(loader_batch(files))]).numpy()


def embeddings(model, files) -> np.ndarray:
    """(N, D) L2-normalised image embeddings of the model's forward in 'tensor' mode."""
    data = model.data_preprocessor(loader_batch(files), False)
    with torch.no_grad():
        return model(data['inputs'], mode='tensor')['image_feats'].numpy()


def scores_of(results) -> np.ndarray:
    return np.stack([result['pred_scores'] for result in results])


def test_get_model_builds_loads_and_predicts(tiny_config, tiny_checkpoint, tiny_model,
                                             image_folder):
    model = get_model(tiny_config, pretrained=str(tiny_checkpoint))
    assert isinstance(model, ViLReF) and not model.training
    assert model._config.model.image_encoder.img_size == 32
    assert isinstance(model._dataset_meta, dict)
    saved = torch.load(tiny_checkpoint, weights_only=True)['state_dict']
    assert all(torch.equal(saved[key], value) for key, value in model.state_dict().items())

    files = collect_images(image_folder)
    scores = loader_scores(model, files)
    classes = list(load_prompt_file(DEFAULT_PROMPTS)['class_names'])
    assert scores.shape == (5, len(classes)) and ((scores > 0) & (scores < 1)).all()
    data = model.data_preprocessor(loader_batch(files), False)
    with torch.no_grad():
        by_predict = model.predict(data['inputs'])
        by_forward = model(data['inputs']['images'], mode='predict')
    for samples in (by_predict, by_forward):
        np.testing.assert_allclose(torch.stack([s.pred_score for s in samples]).numpy(),
                                   scores, atol=1e-9)
    results = ZeroShotInferencer(model)(files)
    np.testing.assert_allclose(scores_of(results), scores, atol=1e-6)


def test_init_model_loads_the_checkpoint(tiny_model, tiny_checkpoint):
    saved = torch.load(tiny_checkpoint, weights_only=True)['state_dict']
    state = tiny_model.state_dict()
    assert set(saved) == set(state)
    assert all(torch.equal(saved[key], value) for key, value in state.items())
    assert not tiny_model.training
    assert tiny_model._config.model.image_encoder.img_size == 32


def test_init_model_rejects_a_checkpoint_without_all_weights(tmp_path, tiny_config,
                                                           tiny_checkpoint, tiny_model):
    state = torch.load(tiny_checkpoint, weights_only=True)['state_dict']
    del state['text_projection']
    path = tmp_path / 'partial.pth'
    torch.save({'state_dict': state}, path)
    with pytest.raises(IncompleteWeightsError, match=r'partial\.pth.*text_projection'):
        init_model(tiny_config, str(path))
    with pytest.raises(IncompleteWeightsError, match=r'partial\.pth.*text_projection'):
        ZeroShotInferencer(tiny_config, str(path))
    with pytest.raises(IncompleteWeightsError, match=r'partial\.pth.*text_projection'):
        ViLReFFeatureExtractor(get_model(tiny_config), str(path))


def test_foreign_objects_load_only_when_trusted(tmp_path, tiny_config, tiny_model,
                                               tiny_checkpoint):
    """A training checkpoint's message hub loads as it is; other objects need trust."""
    state = torch.load(tiny_checkpoint, weights_only=True)['state_dict']
    path = tmp_path / 'iter_6.pth'
    torch.save({'state_dict': state, 'message_hub': {'loss': HistoryBuffer([1.0], [1])}}, path)
    assert torch.equal(init_model(tiny_config, str(path)).text_projection,
                       tiny_model.text_projection)
    path = tmp_path / 'foreign.pth'
    torch.save({'state_dict': state, 'cfg': Path('config.py')}, path)
    with pytest.raises(RuntimeError, match='foreign.pth needs Python objects.*trusted=True'):
        init_model(tiny_config, str(path))
    with pytest.raises(RuntimeError, match='foreign.pth needs Python objects'):
        ZeroShotInferencer(tiny_config, str(path))
    trusted = ZeroShotInferencer(tiny_config, str(path), trusted=True).model
    assert torch.equal(trusted.text_projection, tiny_model.text_projection)


@pytest.mark.parametrize('trusted', [False, True])
def test_init_model_reads_safetensors(tmp_path, tiny_config, tiny_model, tiny_checkpoint,
                                      trusted):
    path = tmp_path / 'tiny.safetensors'
    save_tensor_checkpoint(torch.load(tiny_checkpoint, weights_only=True)['state_dict'],
                           str(path))
    model = init_model(tiny_config, str(path), trusted=trusted)
    state = tiny_model.state_dict()
    assert all(torch.equal(model.state_dict()[key], value) for key, value in state.items())

    path.write_bytes(path.read_bytes()[:100])  # truncated: the file is named, no trust hint
    with pytest.raises(RuntimeError, match='tiny.safetensors') as error:
        init_model(tiny_config, str(path), trusted=trusted)
    assert 'trust' not in str(error.value)


def test_inferencers_take_a_model_hub_name(tmp_path, tiny_config, tiny_checkpoint,
                                          tiny_model):
    """A model name of mmpretrain's ModelHub (docs/model_zoo.md), as get_model takes it."""
    name = 'vilref-tiny-inference-test'
    if not ModelHub.has(name):
        metafile = tmp_path / 'metafile.yml'
        metafile.write_text(f'Models:\n- Name: {name}\n  Config: {tiny_config}\n')
        ModelHub.register_model_index(metafile)
    model = ViLReFFeatureExtractor(name, str(tiny_checkpoint)).model
    assert model._config.filename == tiny_config
    assert torch.equal(model.text_projection, tiny_model.text_projection)


def test_inferencers_need_a_vilref_with_its_config(tiny_config, tiny_model):
    with DefaultScope.overwrite_default_scope('mmengine'):  # MMEngine's root registry
        built = [INFERENCERS.build(dict(type=name, model=tiny_model))
                 for name in ('ZeroShotInferencer', 'ViLReFFeatureExtractor')]
    assert [type(inferencer) for inferencer in built] == [ZeroShotInferencer,
                                                          ViLReFFeatureExtractor]
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        bare = MODELS.build(Config.fromfile(tiny_config).model)
    with pytest.raises(TypeError, match='get_model'):
        ZeroShotInferencer(bare)
    with pytest.raises(TypeError, match='not a ViLReF-like model'):
        ViLReFFeatureExtractor(str(Path(tiny_config).with_name('tiny_classifier.py')))
    with pytest.raises(ValueError, match='cfg_options'):
        ZeroShotInferencer(tiny_model, cfg_options={'model.embed_dims': 8})


def test_collect_images_expands_folders_in_name_order(image_folder):
    array = np.zeros((8, 8, 3), np.uint8)
    files = sorted(str(path) for path in image_folder.iterdir() if path.suffix != '.txt')
    collected = collect_images([array, image_folder, files[0]])
    assert collected[0] is array
    assert collected[1:] == files + files[:1]
    with pytest.raises(FileNotFoundError, match='missing.png'):
        collect_images(str(image_folder / 'missing.png'))


def test_multilabel_scores_are_the_models_test_scores(tiny_model, image_folder):
    """The config's zero-shot classes (the 25 findings, each against "normal")."""
    inferencer = ZeroShotInferencer(tiny_model)
    assert inferencer.classifier is tiny_model.zero_shot and inferencer.mode == 'multilabel'
    files = collect_images(image_folder)
    results = inferencer(image_folder, batch_size=2)
    expected = loader_scores(tiny_model, files)
    np.testing.assert_allclose(scores_of(results), expected, atol=1e-6)
    assert [result['img_path'] for result in results] == files
    for result, row in zip(results, expected):
        assert result['pred_label'] == row.argmax()
        assert result['pred_class'] == inferencer.classes[row.argmax()]
        assert result['pred_score'] == pytest.approx(row.max(), abs=1e-6)
    assert all('img_path' not in result for result in inferencer(cv2.imread(files[0])))
    samples = inferencer(files[1], return_datasamples=True)
    assert [sample.img_path for sample in samples] == files[1:2]
    np.testing.assert_allclose(samples[0].pred_score.numpy(), expected[1], atol=1e-6)


def test_multiclass_scores_are_the_scores_of_a_multiclass_config(tiny_config, tiny_checkpoint,
                                                                tiny_model, image_folder):
    configured = init_model(tiny_config, str(tiny_checkpoint), cfg_options={
        'model.zero_shot': dict(class_names=CLASSES, mode='multiclass')})
    files = collect_images(image_folder)
    expected = loader_scores(configured, files)
    results = ZeroShotInferencer(tiny_model, class_names=CLASSES, mode='multiclass')(files)
    np.testing.assert_allclose(scores_of(results), expected, atol=1e-6)
    np.testing.assert_allclose(expected.sum(1), 1, atol=1e-9)
    assert [result['pred_class'] for result in results] == [
        CLASSES[index] for index in expected.argmax(1)]

    multilabel = ZeroShotInferencer(tiny_model, class_names=CLASSES)(files)
    assert not np.allclose(scores_of(multilabel).sum(1), 1, atol=1e-3)


def test_free_texts_are_a_softmax_over_them(tiny_model, image_folder):
    inferencer = ZeroShotInferencer(tiny_model, texts=TEXTS)
    assert inferencer.classes == tuple(TEXTS) and inferencer.mode == 'multiclass'
    scores = scores_of(inferencer(image_folder))
    image_feats = torch.from_numpy(embeddings(tiny_model, collect_images(image_folder)))
    with torch.no_grad():
        text_feats = tiny_model.extract_text_feat(TEXTS)
    logits = tiny_model.logit_scale.exp().item() * image_feats @ text_feats.t()
    np.testing.assert_allclose(scores, logits.double().softmax(1).numpy(), atol=1e-5)
    with pytest.raises(PromptError, match='not both'):
        ZeroShotInferencer(tiny_model, class_names=['glaucoma'], texts=TEXTS)
    with pytest.raises(PromptError, match='distinct'):
        ZeroShotInferencer(tiny_model, texts=['青光眼', '青光眼'])


@pytest.fixture
def drawn(monkeypatch) -> list:
    """(data sample, options) of each ``UniversalVisualizer.visualize_cls`` call."""
    calls = []
    draw = UniversalVisualizer.visualize_cls

    def spy(self, image, data_sample, **kwargs):
        calls.append((data_sample, kwargs))
        return draw(self, image, data_sample, **kwargs)

    monkeypatch.setattr(UniversalVisualizer, 'visualize_cls', spy)
    return calls


def test_show_dir_draws_each_inputs_ranking(tmp_path, tiny_model, image_folder, drawn):
    files = collect_images(image_folder)
    array = np.full((30, 40, 3), 200, np.uint8)
    inferencer = ZeroShotInferencer(tiny_model, class_names=CLASSES)
    results = inferencer([image_folder, files[0], array], show_dir=tmp_path / 'vis', topk=2)
    written = sorted(path.name for path in (tmp_path / 'vis').iterdir())
    assert written == sorted([Path(file).stem + '.png' for file in files] +
                             ['fundus_0_5.png', 'array_6.png'])
    for file in files:  # the image at its size, with the ranking drawn on it
        vis = cv2.imread(str(tmp_path / 'vis' / (Path(file).stem + '.png')))
        assert vis.shape == cv2.imread(file).shape and not np.array_equal(vis, cv2.imread(file))
    assert len(drawn) == len(results) == 7
    for result, (sample, kwargs) in zip(results, drawn):
        assert sample.pred_label.tolist() == np.argsort(-result['pred_scores'])[:2].tolist()
        assert kwargs['classes'] == tuple(CLASSES) and kwargs['text_cfg'] == {}


@pytest.mark.filterwarnings('ignore:Glyph .* missing from font')  # DejaVu has no Chinese
@pytest.mark.parametrize('font', [None, 'DejaVu Sans'])
def test_chinese_class_names_need_a_chinese_font(tmp_path, tiny_model, image_folder,
                                                 monkeypatch, drawn, font):
    """With a font that has Chinese glyphs, it draws the names; without one, the indices."""
    monkeypatch.setattr(zero_shot_module, 'installed_cjk_font', lambda: font)
    inferencer = ZeroShotInferencer(tiny_model, texts=TEXTS)
    inferencer(collect_images(image_folder)[0], show_dir=tmp_path)
    _, kwargs = drawn[0]
    if font is None:
        assert kwargs['classes'] is None and kwargs['text_cfg'] == {}
    else:
        assert kwargs['classes'] == tuple(TEXTS)
        assert kwargs['text_cfg'] == dict(family=['monospace', font])
    assert [path.name for path in tmp_path.iterdir()] == ['fundus_0.png']


def test_image_features_are_the_models_embeddings(tiny_model, image_folder):
    files = collect_images(image_folder)
    extractor = ViLReFFeatureExtractor(tiny_model)
    by_path = torch.stack(extractor(files, batch_size=2)).numpy()
    assert by_path.shape == (len(files), 16) and by_path.dtype == np.float32
    np.testing.assert_allclose(by_path, embeddings(tiny_model, files), atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(by_path, axis=1), 1, atol=1e-5)
    by_array = torch.stack(extractor([cv2.imread(path) for path in files], 5)).numpy()
    by_folder = torch.stack(extractor(image_folder)).numpy()
    np.testing.assert_allclose(by_array, by_path, atol=1e-6)
    np.testing.assert_allclose(by_folder, by_path, atol=1e-6)
    assert not np.allclose(by_path[0], by_path[1], atol=1e-3)  # images differ


def test_encoder_features_are_the_embeddings_before_the_projection(tiny_model, image_folder):
    extractor = ViLReFFeatureExtractor(tiny_model)
    encoder = torch.stack(extractor(image_folder, feature='encoder'))
    assert encoder.shape == (5, 32)
    projected = F.normalize(encoder @ tiny_model.image_projection.detach(), dim=-1)
    np.testing.assert_allclose(projected.numpy(), torch.stack(extractor(image_folder)).numpy(),
                               atol=1e-5)
    with pytest.raises(ValueError, match='feature'):
        extractor(image_folder, feature='patch')


def test_bad_image_arrays_are_rejected(tiny_model):
    extractor = ViLReFFeatureExtractor(tiny_model)
    with pytest.raises(ValueError, match='H x W x 3'):
        extractor(np.zeros((8, 8, 4), np.uint8))
    gray = extractor(np.full((20, 20), 128, np.uint8))[0]
    color = extractor(np.full((20, 20, 3), 128, np.uint8))[0]
    torch.testing.assert_close(gray, color, atol=1e-6, rtol=0)


def test_text_features_match_the_model_in_any_batch_size(tiny_model):
    extractor = ViLReFFeatureExtractor(tiny_model)
    features = torch.stack(extractor.extract_text(TEXTS, batch_size=2))
    with torch.no_grad():
        expected = tiny_model.extract_text_feat(TEXTS)
    assert features.shape == (3, 16)
    torch.testing.assert_close(features, expected, atol=1e-5, rtol=0)
    torch.testing.assert_close(extractor.extract_text(TEXTS[1])[0], expected[1], atol=1e-5,
                               rtol=0)
    with pytest.raises(ValueError, match='no texts'):
        extractor.extract_text([])


def test_retrieval_ranks_by_cosine_similarity(tiny_model, image_folder):
    image_feats = embeddings(tiny_model, collect_images(image_folder))
    with torch.no_grad():
        text_feats = tiny_model.extract_text_feat(TEXTS).numpy()
    similarity = text_feats @ image_feats.T

    hits = retrieve(tiny_model, TEXTS, image_folder, topk=3)
    assert len(hits) == 3 and all(len(row) == 3 for row in hits)
    for query, row in enumerate(hits):
        assert [index for index, _ in row] == np.argsort(-similarity[query])[:3].tolist()
        np.testing.assert_allclose([score for _, score in row],
                                   np.sort(similarity[query])[::-1][:3], atol=1e-5)

    reverse = retrieve(tiny_model, TEXTS, image_folder, direction='image_to_text', topk=10)
    assert len(reverse) == 5 and all(len(row) == 3 for row in reverse)  # only 3 texts
    assert [row[0][0] for row in reverse] == similarity.argmax(0).tolist()
    with pytest.raises(ValueError, match='direction'):
        retrieve(tiny_model, TEXTS, image_folder, direction='both')


def test_image_pipeline_keeps_only_the_image_transforms(tiny_config):
    demo = Config.fromfile(tiny_config)
    pipeline = build_image_pipeline(demo)
    assert [type(t).__name__ for t in pipeline.transforms] == ['Resize', 'PackInputs']
    assert pipeline.transforms[0].scale == (32, 32)

    bare = build_image_pipeline(Config(dict(model=dict())), img_size=(48, 64))
    assert [type(t).__name__ for t in bare.transforms] == ['Resize', 'PackInputs']
    assert bare.transforms[0].scale == (64, 48)  # (W, H)
    packed = bare(dict(img=np.zeros((10, 20, 3), np.uint8), img_shape=(10, 20)))
    assert tuple(packed['inputs'].shape) == (3, 48, 64)
