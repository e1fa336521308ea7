"""Transforms of the image-report pipeline and the release's augmentation config."""
import io
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
from vilref_mm.datasets.synthetic import make_sample
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


@pytest.fixture(scope='module')
def fundus_jpeg() -> bytes:
    """A 1024 px synthetic fundus photograph as a quality-95 JPEG."""
    image = make_sample(0, 'train', 0, size=1024).drawing.image
    return cv2.imencode('.jpg', image, [cv2.IMWRITE_JPEG_QUALITY, 95])[1].tobytes()


def encode(image: np.ndarray, format: str = 'JPEG', **params) -> bytes:
    """``image`` (BGR or greyscale) encoded by PIL."""
    out = io.BytesIO()
    Image.fromarray(image[..., ::-1] if image.ndim == 3 else image).save(out, format, **params)
    return out.getvalue()


def bicubic(image: np.ndarray, size: int, box=(0., 0., 1., 1.)) -> np.ndarray:
    """The relative ``box`` of ``image`` resized to ``size`` x ``size`` (PIL bicubic)."""
    height, width = image.shape[:2]
    box = (box[0] * width, box[1] * height, box[2] * width, box[3] * height)
    return np.asarray(Image.fromarray(np.ascontiguousarray(image)).resize(
        (size, size), Image.BICUBIC, box=box), dtype=np.int16)


def test_reduced_decoding_keeps_the_minimum_side_and_stays_close_to_a_full_decode(
        fundus_jpeg):
    full = LoadImageFromRecord()({'img_bytes': fundus_jpeg})['img']
    load = LoadImageFromRecord(decode_min_side=120)
    reduced = load({'img_bytes': fundus_jpeg, 'image_id': '0'})
    # 1024 // 120 = 8: the 1/8 scale, the smallest that keeps 120 px.
    assert reduced['img'].shape == (128, 128, 3) and reduced['img'].dtype == np.uint8
    assert reduced['img_shape'] == reduced['ori_shape'] == (128, 128)
    assert 'decode_min_side=120' in repr(load)
    # The documented bound (docs/data_preparation.md): after the resize to the model's size
    # (here 108 = 0.9 x 120), on the whole image and on the smallest RandomResizedCrop crop
    # (area 0.9: 90% of the width), the mean difference from a full decode is under 2/255.
    for box in ((0., 0., 1., 1.), (0.05, 0., 0.95, 1.)):
        difference = np.abs(bicubic(full, 108, box) - bicubic(reduced['img'], 108, box))
        assert difference.mean() < 2.0 and np.percentile(difference, 99) < 16, box

    # A scale that keeps both sides of a non-square image at least the minimum.
    wide = cv2.resize(full, (1000, 700), interpolation=cv2.INTER_AREA)
    image = load({'img_bytes': encode(wide)})['img']
    assert image.shape == (175, 250, 3)  # 1/4: 700 // 120 = 5
    assert min(image.shape[:2]) >= 120


def test_reduced_decoding_leaves_small_and_non_jpeg_images_exact(fundus_jpeg):
    full, reduced = LoadImageFromRecord(), LoadImageFromRecord(decode_min_side=120)
    image = full({'img_bytes': fundus_jpeg})['img']
    small = encode(cv2.resize(image, (239, 239)))  # shorter side < 2 x 120: nothing to gain
    png = cv2.imencode('.png', image)[1].tobytes()
    for data in (small, png):
        np.testing.assert_array_equal(reduced({'img_bytes': data})['img'],
                                      full({'img_bytes': data})['img'])
    # A broken JPEG is decided by the full decode: here an error naming the record.
    with pytest.raises(RecordError, match=r"m.jsonl:2: field 'image' cannot load"):
        reduced({'img_bytes': fundus_jpeg[:200], 'record': 'm.jsonl:2'})


def test_reduced_decoding_of_greyscale_and_rotated_jpegs(fundus_jpeg):
    load = LoadImageFromRecord(decode_min_side=100)
    grey = cv2.cvtColor(LoadImageFromRecord()({'img_bytes': fundus_jpeg})['img'],
                        cv2.COLOR_BGR2GRAY)[:, :800]
    image = load({'img_bytes': encode(grey)})['img']
    assert image.shape == (128, 100, 3)  # colour, as color_type='color' reads greyscale
    assert (image[..., 0] == image[..., 1]).all() and (image[..., 1] == image[..., 2]).all()
    # EXIF orientation 6 (rotate 90 degrees clockwise): upright, as the full decode reads it.
    exif = Image.Exif()
    exif[0x0112] = 6
    rotated = encode(np.dstack([grey] * 3), exif=exif.tobytes())
    upright = LoadImageFromRecord()({'img_bytes': rotated})['img']
    assert upright.shape == (800, 1024, 3)
    reduced = load({'img_bytes': rotated})['img']
    assert reduced.shape == (100, 128, 3)
    assert np.abs(bicubic(upright, 64) - bicubic(reduced, 64)).mean() < 2.0


def test_reduced_decoding_needs_colour_and_a_positive_size():
    for kwargs in (dict(decode_min_side=0), dict(decode_min_side=224,
                                                 color_type='grayscale')):
        with pytest.raises(ValueError, match='decode_min_side must be a positive number'):
            LoadImageFromRecord(**kwargs)


def test_the_train_pipeline_decodes_large_jpegs_reduced_for_its_crop(pipelines):
    load, crop = pipelines.train_pipeline[:2]
    # The smallest crop side is 0.9 x the image's shorter side (area fraction >= 0.9).
    assert load['decode_min_side'] * crop['crop_ratio_range'][0] >= crop['scale']
    assert 'decode_min_side' not in pipelines.test_pipeline[0]  # evaluation decodes in full
