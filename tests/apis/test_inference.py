"""The inference API (vilref_mm.apis.inference) on a tiny random ViLReF."""
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from mmengine.config import Config
from mmengine.logging import HistoryBuffer

from vilref_mm.apis import (collect_images, extract_image_features, extract_text_features,
                            format_ranking, init_model, retrieve, save_features,
                            select_prompts, zero_shot, zero_shot_classifier)
from vilref_mm.apis.inference import build_image_pipeline
from vilref_mm.evaluation import DEFAULT_PROMPTS, PromptError, load_prompt_file
from vilref_mm.utils.checkpoint import IncompleteWeightsError, save_tensor_checkpoint

TEXTS = ['视盘水肿', '正常眼底', '糖尿病视网膜病变']


def test_init_model_loads_the_checkpoint(tiny_model, tiny_checkpoint):
    saved = torch.load(tiny_checkpoint, weights_only=True)['state_dict']
    state = tiny_model.state_dict()
    assert set(saved) == set(state)
    assert all(torch.equal(saved[key], value) for key, value in state.items())
    assert not tiny_model.training
    assert tiny_model.cfg.model.image_encoder.img_size == 32


def test_init_model_rejects_a_checkpoint_without_all_weights(tmp_path, tiny_config,
                                                           tiny_checkpoint):
    state = torch.load(tiny_checkpoint, weights_only=True)['state_dict']
    del state['text_projection']
    path = tmp_path / 'partial.pth'
    torch.save({'state_dict': state}, path)
    with pytest.raises(IncompleteWeightsError, match=r'partial\.pth.*text_projection'):
        init_model(tiny_config, str(path))


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
    trusted = init_model(tiny_config, str(path), trusted=True)
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


def test_collect_images_expands_folders_in_name_order(image_folder):
    array = np.zeros((8, 8, 3), np.uint8)
    files = sorted(str(path) for path in image_folder.iterdir() if path.suffix != '.txt')
    collected = collect_images([array, image_folder, files[0]])
    assert collected[0] is array
    assert collected[1:] == files + files[:1]
    with pytest.raises(FileNotFoundError, match='missing.png'):
        collect_images(str(image_folder / 'missing.png'))


def test_image_features_of_paths_arrays_and_batches_agree(tiny_model, image_folder):
    files = collect_images(image_folder)
    arrays = [cv2.imread(path) for path in files]
    by_path = extract_image_features(tiny_model, files, batch_size=2)
    by_array = extract_image_features(tiny_model, arrays, batch_size=5)
    by_folder = extract_image_features(tiny_model, image_folder, batch_size=1, progress=False)
    assert by_path.shape == (len(files), 16) and by_path.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(by_path, axis=1), 1, atol=1e-5)
    np.testing.assert_allclose(by_array, by_path, atol=1e-5)
    np.testing.assert_allclose(by_folder, by_path, atol=1e-5)
    assert not np.allclose(by_path[0], by_path[1], atol=1e-3)  # images differ


def test_encoder_features_are_the_embeddings_before_the_projection(tiny_model, image_folder):
    encoder = extract_image_features(tiny_model, image_folder, feature='encoder')
    embedding = extract_image_features(tiny_model, image_folder)
    assert encoder.shape == (5, 32)
    projected = F.normalize(torch.from_numpy(encoder) @ tiny_model.image_projection.detach(),
                            dim=-1)
    np.testing.assert_allclose(projected.numpy(), embedding, atol=1e-5)
    with pytest.raises(ValueError, match='feature'):
        extract_image_features(tiny_model, image_folder, feature='patch')


def test_bad_image_arrays_are_rejected(tiny_model):
    with pytest.raises(ValueError, match='H x W x 3'):
        extract_image_features(tiny_model, np.zeros((8, 8, 4), np.uint8))
    gray = extract_image_features(tiny_model, np.full((20, 20), 128, np.uint8))
    color = extract_image_features(tiny_model, np.full((20, 20, 3), 128, np.uint8))
    np.testing.assert_allclose(gray, color, atol=1e-6)


def test_text_features_match_the_model_in_any_batch_size(tiny_model):
    features = extract_text_features(tiny_model, TEXTS, batch_size=2)
    with torch.no_grad():
        expected = tiny_model.extract_text_feat(TEXTS).numpy()
    assert features.shape == (3, 16)
    np.testing.assert_allclose(features, expected, atol=1e-5)
    np.testing.assert_allclose(extract_text_features(tiny_model, TEXTS[1]), expected[1:2],
                               atol=1e-5)


def test_zero_shot_scores_are_the_classifier_scores(tiny_model, image_folder):
    result = zero_shot(tiny_model, image_folder, class_names=['glaucoma', 'drusen', 'amd'])
    assert result.classes == ('glaucoma', 'drusen', 'amd')
    assert result.mode == 'multilabel' and result.scores.shape == (5, 3)
    assert ((result.scores > 0) & (result.scores < 1)).all()
    assert result.images == collect_images(image_folder)

    classifier = zero_shot_classifier(tiny_model, ['glaucoma', 'drusen', 'amd'])
    features = torch.from_numpy(extract_image_features(tiny_model, image_folder))
    with torch.no_grad():
        expected = classifier.scores(features, classifier.prototypes(tiny_model),
                                     tiny_model.logit_scale.exp())
    np.testing.assert_allclose(result.scores, expected.numpy(), atol=1e-5)


def test_zero_shot_defaults_to_the_models_classes(tiny_model, image_folder):
    result = zero_shot(tiny_model, image_folder)
    defaults = list(load_prompt_file(DEFAULT_PROMPTS)['class_names'])
    assert list(result.classes) == defaults and result.scores.shape == (5, len(defaults))
    assert zero_shot_classifier(tiny_model) is tiny_model.zero_shot
    multiclass = zero_shot(tiny_model, image_folder, mode='multiclass')
    np.testing.assert_allclose(multiclass.scores.sum(1), 1, atol=1e-9)


def test_zero_shot_on_free_texts_is_a_softmax_over_them(tiny_model, image_folder):
    result = zero_shot(tiny_model, image_folder, texts=TEXTS)
    assert result.classes == tuple(TEXTS) and result.mode == 'multiclass'
    np.testing.assert_allclose(result.scores.sum(1), 1, atol=1e-9)
    image_feats = torch.from_numpy(extract_image_features(tiny_model, image_folder))
    text_feats = torch.from_numpy(extract_text_features(tiny_model, TEXTS))
    logits = tiny_model.logit_scale.exp().item() * image_feats @ text_feats.t()
    np.testing.assert_allclose(result.scores, logits.double().softmax(1).numpy(), atol=1e-5)
    with pytest.raises(PromptError, match='not both'):
        zero_shot(tiny_model, image_folder, class_names=['glaucoma'], texts=TEXTS)
    with pytest.raises(PromptError, match='distinct'):
        zero_shot(tiny_model, image_folder, texts=['青光眼', '青光眼'])


def test_zero_shot_result_ranks_and_saves(tmp_path, tiny_model, image_folder):
    result = zero_shot(tiny_model, image_folder, class_names=['glaucoma', 'drusen', 'amd'])
    ranking = result.ranking(2)
    assert [score for _, score in ranking] == sorted(result.scores[2], reverse=True)
    assert len(result.ranking(2, topk=2)) == 2

    table = format_ranking(result, topk=2)
    first = result.ranking(0)[0]
    assert result.images[0] in table and f'{first[0]}' in table and f'{first[1]:.4f}' in table
    assert table.count('rank') == 5 and table.count('\n     3  ') == 0

    out = tmp_path / 'out' / 'scores.json'
    result.save_json(out)
    saved = json.loads(out.read_text(encoding='utf-8'))
    assert saved['classes'] == list(result.classes) and saved['mode'] == 'multilabel'
    assert [item['file'] for item in saved['images']] == result.images
    assert saved['images'][4]['scores']['amd'] == pytest.approx(result.scores[4, 2])
    assert [path.name for path in out.parent.iterdir()] == ['scores.json']  # no temp left


def test_select_prompts_from_keys_and_files(tmp_path):
    prompts = tmp_path / 'prompts.yaml'
    prompts.write_text("templates: ['诊断：{}。']\nclass_names:\n  cup: [视杯扩大]\n"
                       '  edema: [视盘水肿]\n', encoding='utf-8')
    assert select_prompts() == (None, None)
    assert select_prompts(prompt_file=str(prompts)) == (
        {'cup': ['视杯扩大'], 'edema': ['视盘水肿']}, ['诊断：{}。'])
    assert select_prompts(['edema'], str(prompts))[0] == {'edema': ['视盘水肿']}
    names, templates = select_prompts(['glaucoma'])
    assert list(names) == ['glaucoma'] and templates is None
    with pytest.raises(PromptError, match=r'prompts\.yaml.*glaucoma'):
        select_prompts(['glaucoma'], str(prompts))
    with pytest.raises(PromptError, match='glaucom'):
        select_prompts(['glaucom'])


def test_retrieval_ranks_by_cosine_similarity(tiny_model, image_folder):
    image_feats = extract_image_features(tiny_model, image_folder)
    text_feats = extract_text_features(tiny_model, TEXTS)
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


def test_save_features_writes_npy_and_names(tmp_path):
    features = np.arange(6, dtype=np.float32).reshape(3, 2)
    save_features(tmp_path / 'feats.npy', features, ['a.png', 'b.png', 'c.png'])
    np.testing.assert_array_equal(np.load(tmp_path / 'feats.npy'), features)
    assert (tmp_path / 'feats.txt').read_text().splitlines() == ['a.png', 'b.png', 'c.png']
    with pytest.raises(ValueError, match='.npy'):
        save_features(tmp_path / 'feats.bin', features)
