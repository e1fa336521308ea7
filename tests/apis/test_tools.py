"""tools/zero_shot.py and tools/extract_features.py end to end on a tiny random ViLReF."""
import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from vilref_mm.apis import ViLReFFeatureExtractor, ZeroShotInferencer, collect_images
from vilref_mm.evaluation import PromptError
from tool_modules import load_module

ROOT = Path(__file__).resolve().parents[2]
CLASSES = ['normal', 'glaucoma', 'drusen']


def run_tool(name: str, *args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / 'tools' / name), *map(str, args)],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)


def test_zero_shot_cli_prints_rankings_and_writes_json(tmp_path, tiny_config, tiny_checkpoint,
                                                       tiny_model, image_folder):
    single = collect_images(image_folder)[0]
    out = tmp_path / 'scores.json'
    proc = run_tool('zero_shot.py', tiny_config, tiny_checkpoint, image_folder, single,
                    '--classes', *CLASSES, '--topk', '2', '--out', out,
                    '--show-dir', tmp_path / 'vis')
    assert proc.returncode == 0, proc.stderr[-3000:]

    saved = json.loads(out.read_text(encoding='utf-8'))
    images = collect_images([image_folder, single])
    expected = ZeroShotInferencer(tiny_model, class_names=CLASSES)(images)
    assert saved['mode'] == 'multilabel' and saved['classes'] == CLASSES
    assert [item['file'] for item in saved['images']] == images and saved['failed'] == []
    scores = np.array([[item['scores'][c] for c in saved['classes']]
                       for item in saved['images']])
    np.testing.assert_allclose(scores, [result['pred_scores'] for result in expected],
                               atol=1e-5)

    for name, result in zip(images, expected):  # a table per image, best class first
        assert f'{name}  [' in proc.stdout
        assert f'     1  {result["pred_class"]:<8}  {result["pred_score"]:.4f}' in proc.stdout
    assert '     3  ' not in proc.stdout  # --topk 2
    assert f'wrote the scores of 6 images to {out}' in proc.stdout
    assert proc.stdout.startswith(f'{images[0]}  [')  # no progress bar on a pipe
    assert len(list((tmp_path / 'vis').glob('*.png'))) == 6


def test_zero_shot_cli_texts_and_errors(tmp_path, tiny_config, tiny_checkpoint, image_folder,
                                        capsys):
    tool = load_module('tools/zero_shot.py')
    image = collect_images(image_folder)[1]
    assert tool.main([tiny_config, str(tiny_checkpoint), image, '--texts', '视盘水肿',
                      '正常眼底', '--out', str(tmp_path / 'texts.json')]) == 0
    saved = json.loads((tmp_path / 'texts.json').read_text(encoding='utf-8'))
    assert saved['mode'] == 'multiclass' and saved['classes'] == ['视盘水肿', '正常眼底']
    assert sum(saved['images'][0]['scores'].values()) == pytest.approx(1)

    assert tool.main([tiny_config, str(tiny_checkpoint), image, '--classes', 'glaucom']) == 1
    assert 'glaucom' in capsys.readouterr().err
    assert tool.main([tiny_config, str(tiny_checkpoint), str(tmp_path / 'none.png')]) == 1
    assert 'none.png' in capsys.readouterr().err
    with pytest.raises(SystemExit):
        tool.parse_args([tiny_config, 'ckpt', image, '--texts', 'a', '--classes', 'normal'])


def test_select_prompts_from_keys_and_files(tmp_path):
    select_prompts = load_module('tools/zero_shot.py').select_prompts
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


def test_extract_features_cli_writes_npy(tmp_path, tiny_config, tiny_checkpoint, tiny_model,
                                         image_folder):
    out = tmp_path / 'features.npy'
    proc = run_tool('extract_features.py', tiny_config, tiny_checkpoint, image_folder,
                    '--out', out, '--batch-size', '2')
    assert proc.returncode == 0, proc.stderr[-3000:]
    features = np.load(out)
    assert features.shape == (5, 16) and features.dtype == np.float32
    expected = torch.stack(ViLReFFeatureExtractor(tiny_model)(image_folder)).numpy()
    np.testing.assert_allclose(features, expected, atol=1e-5)
    assert out.with_suffix('.txt').read_text().splitlines() == collect_images(image_folder)
    assert proc.stdout.startswith('wrote 5 x 16 features')


def test_extract_features_cli_encoder_and_texts(tmp_path, tiny_config, tiny_checkpoint,
                                                tiny_model, image_folder):
    tool = load_module('tools/extract_features.py')
    out = tmp_path / 'encoder.npy'
    assert tool.main([tiny_config, str(tiny_checkpoint), str(image_folder), '--out', str(out),
                      '--feature', 'encoder', '--no-progress']) == 0
    assert np.load(out).shape == (5, 32)

    texts = tmp_path / 'findings.txt'
    texts.write_text('视盘水肿\n\n正常眼底\n', encoding='utf-8')
    out = tmp_path / 'texts.npy'
    assert tool.main([tiny_config, str(tiny_checkpoint), '--text-file', str(texts),
                      '--out', str(out)]) == 0
    with torch.no_grad():
        expected = tiny_model.extract_text_feat(['视盘水肿', '正常眼底']).numpy()
    np.testing.assert_allclose(np.load(out), expected, atol=1e-5)
    assert not out.with_suffix('.txt').exists()
    for argv in ([tiny_config, 'ckpt', '--out', str(out)],
                 [tiny_config, 'ckpt', str(image_folder), '--out', str(tmp_path / 'f.bin')]):
        with pytest.raises(SystemExit):
            tool.parse_args(argv)


def test_zero_shot_cli_on_a_real_fundus_photograph(tmp_path, tiny_config, tiny_checkpoint,
                                                   tiny_model):
    """demo/fundus_normal_left_eye.jpg, a real 512 x 512 photograph (demo/README.md), scored
    against every class of the default label set and drawn at its size."""
    photo = ROOT / 'demo' / 'fundus_normal_left_eye.jpg'
    out = tmp_path / 'real.json'
    assert load_module('tools/zero_shot.py').main([tiny_config, str(tiny_checkpoint), str(photo),
                                           '--out', str(out), '--show-dir',
                                           str(tmp_path)]) == 0
    saved = json.loads(out.read_text(encoding='utf-8'))
    expected = ZeroShotInferencer(tiny_model)(str(photo))[0]['pred_scores']
    assert saved['mode'] == 'multilabel' and len(saved['classes']) == 25
    assert saved['images'][0]['file'] == str(photo)
    scores = np.array([saved['images'][0]['scores'][c] for c in saved['classes']])
    assert ((scores > 0) & (scores < 1)).all()
    np.testing.assert_allclose(scores, expected, atol=1e-5)
    assert cv2.imread(str(tmp_path / 'fundus_normal_left_eye.png')).shape == (512, 512, 3)
