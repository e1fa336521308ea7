"""Transforms of the image-report pipeline and the release's augmentation config."""
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.dataset import Compose
from mmengine.registry import init_default_scope
from PIL import Image

import vilref_mm.datasets  # noqa: F401  registers the datasets and transforms
from mmpretrain.registry import TRANSFORMS
from mmpretrain.structures import DataSample
from vilref_mm.datasets import (LoadImageFromRecord, PackImageReportInputs, RecordError,
                                TokenizeReport)
from vilref_mm.models.text import ChineseBertTokenizer

ROOT = Path(__file__).parents[2]
REPORTS = ['右眼视盘边界清，C/D约0.7', '黄斑区可见硬性渗出“点状”', 'OS：眼底未见明显异常']


@pytest.fixture(autouse=True)
def mmpretrain_scope():
    init_default_scope('mmpretrain')


@pytest.fixture(scope='module')
def pipelines():
    return Config.fromfile(ROOT / 'configs/_base_/datasets/image_report_pretrain.py')


def random_image(seed: int = 0, size=(48, 40)) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (*size, 3), dtype=np.uint8)


def test_tokenize_report_gives_the_tokenizer_ids():
    transform = TRANSFORMS.build(dict(type='TokenizeReport'))
    tokenizer = ChineseBertTokenizer(context_length=100)
    expected = tokenizer(REPORTS)
    for report, ids in zip(REPORTS, expected):
        text_ids = transform({'text': report})['text_ids']
        assert text_ids.shape == (100, ) and text_ids.dtype == torch.long
        torch.testing.assert_close(text_ids, ids)
        assert (text_ids != 0).sum() > 2  # [CLS], report tokens, [SEP]

    short = TokenizeReport(tokenizer=dict(type='ChineseBertTokenizer', context_length=8))
    torch.testing.assert_close(short({'text': REPORTS[0]})['text_ids'],
                               ChineseBertTokenizer(context_length=8)(REPORTS[0]))
    assert 'context_length=8' in repr(short)


def test_pack_image_report_inputs():
    image = random_image()
    labels = np.linspace(0, 1, 5, dtype=np.float32)
    text_ids = torch.arange(10)
    packed = PackImageReportInputs()({
        'img': image, 'text_ids': text_ids, 'gt_score': labels, 'img_path': 'a.png',
        'eye': 'left', 'record': 'train.jsonl:3', 'sample_idx': 2, 'text': REPORTS[0]})
    inputs, sample = packed['inputs'], packed['data_samples']
    assert set(inputs) == {'images', 'text_ids', 'labels'}
    assert inputs['images'].dtype == torch.uint8  # no float conversion on the host
    torch.testing.assert_close(inputs['images'], torch.from_numpy(image).permute(2, 0, 1))
    assert inputs['images'].is_contiguous()
    torch.testing.assert_close(inputs['text_ids'], text_ids)
    assert inputs['labels'].dtype == torch.float32
    torch.testing.assert_close(inputs['labels'], torch.from_numpy(labels))
    assert isinstance(sample, DataSample)
    torch.testing.assert_close(sample.gt_score, inputs['labels'])
    assert (sample.img_path, sample.eye, sample.record, sample.sample_idx) == (
        'a.png', 'left', 'train.jsonl:3', 2)
    assert 'text' not in sample.metainfo

    unlabelled = PackImageReportInputs()({'img': image, 'text_ids': text_ids})
    assert set(unlabelled['inputs']) == {'images', 'text_ids'}
    with pytest.raises(KeyError, match='TokenizeReport'):
        PackImageReportInputs()({'img': image})


def test_load_image_from_bytes_equals_from_file(tmp_path):
    image = random_image()
    path = tmp_path / 'image.png'
    cv2.imwrite(str(path), image)
    load = LoadImageFromRecord()
    from_file = load({'img_path': str(path)})
    from_bytes = load({'img_bytes': path.read_bytes(), 'image_id': '0'})
    np.testing.assert_array_equal(from_file['img'], image)
    np.testing.assert_array_equal(from_bytes['img'], image)
    assert 'img_bytes' not in from_bytes
    assert from_bytes['ori_shape'] == from_bytes['img_shape'] == image.shape[:2]

    with pytest.raises(RecordError, match=r"train.jsonl:5: field 'image' cannot load the "
                       r"image '7' stored in the LMDB"):
        load({'img_bytes': b'garbage', 'image_id': '7', 'record': 'train.jsonl:5'})
    ignoring = LoadImageFromRecord(ignore_empty=True)
    assert ignoring({'img_path': str(tmp_path / 'missing.png'), 'record': 'm.jsonl:1'}) is None


def test_the_train_pipeline_is_the_release_augmentation(pipelines):
    by_type = {step['type']: step for step in pipelines.train_pipeline}
    assert list(by_type) == ['LoadImageFromRecord', 'RandomResizedCrop', 'RandomFlip',
                             'ColorJitter', 'TokenizeReport', 'PackImageReportInputs']
    crop = by_type['RandomResizedCrop']
    assert (crop['scale'], tuple(crop['crop_ratio_range']), crop['interpolation']) == (
        224, (0.9, 1.0), 'bicubic')
    assert (by_type['RandomFlip']['prob'], by_type['RandomFlip']['direction']) == (
        0.5, 'horizontal')
    jitter = by_type['ColorJitter']
    assert (jitter['brightness'], jitter['contrast'], jitter['saturation']) == (0.1, 0.1, 0.1)
    assert jitter.get('hue', 0.) == 0.
    assert by_type['TokenizeReport']['tokenizer']['context_length'] == 100
    assert not any('Rotat' in step['type'] for step in pipelines.train_pipeline)
    assert pipelines.train_dataloader.collate_fn['type'] == 'pseudo_collate'

    pipeline = Compose(pipelines.train_pipeline)
    image = random_image(size=(80, 96))
    outputs = [pipeline({'img_bytes': cv2.imencode('.png', image)[1].tobytes(), 'text': text,
                         'gt_score': np.zeros(3, np.float32)}) for text in REPORTS]
    for output in outputs:
        assert output['inputs']['images'].shape == (3, 224, 224)
        assert output['inputs']['images'].dtype == torch.uint8
        assert output['inputs']['text_ids'].shape == (100, )
    # Random augmentation: the same image comes out differently.
    assert not all(torch.equal(outputs[0]['inputs']['images'], output['inputs']['images'])
                   for output in outputs[1:])


def test_the_test_pipeline_resizes_to_224_with_pil_bicubic(pipelines, tmp_path):
    image = random_image(size=(80, 96))
    path = tmp_path / 'image.png'
    cv2.imwrite(str(path), image)
    output = Compose(pipelines.test_pipeline)({'img_path': str(path), 'text': REPORTS[0]})
    # The release: PIL (torchvision) bicubic resize of the RGB image; the pipeline keeps BGR.
    expected = np.asarray(Image.fromarray(image[..., ::-1]).resize((224, 224), Image.BICUBIC))
    images = output['inputs']['images']
    assert images.shape == (3, 224, 224) and images.dtype == torch.uint8
    np.testing.assert_array_equal(images.permute(1, 2, 0).numpy()[..., ::-1], expected)
