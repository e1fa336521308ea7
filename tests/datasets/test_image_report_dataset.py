"""ImageReportDataset: manifest parsing, labels and their cache, bad records, end to end."""
import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.dataset import pseudo_collate
from mmengine.logging import MMLogger
from mmengine.registry import init_default_scope
from mmengine.runner import Runner
from torch.utils.data import DataLoader

import vilref_mm.datasets  # noqa: F401  registers the datasets and transforms
import vilref_mm.models  # noqa: F401  registers the model
from mmpretrain.registry import MODELS
from vilref_mm.datasets import ImageReportDataset, RecordError
from vilref_mm.datasets import label_cache as label_cache_module
from vilref_mm.datasets.synthetic import generate_synthetic_fundus
from vilref_mm.labeling import ReportLabeler

ROOT = Path(__file__).parents[2]
NUM_IMAGES = 6


@pytest.fixture(autouse=True)
def mmpretrain_scope():
    """Pipelines name transforms registered in mmpretrain's registry."""
    init_default_scope('mmpretrain')


@pytest.fixture(scope='module')
def synthetic(tmp_path_factory) -> Path:
    """A folder with images/ and train.jsonl (image, report, eye; no labels) of 64 px images."""
    out = tmp_path_factory.mktemp('synthetic')
    generate_synthetic_fundus(out, num_train=NUM_IMAGES, num_val=0, num_test=0, size=64, seed=0)
    return out


@pytest.fixture
def data_root(synthetic, tmp_path) -> Path:
    """A private copy of the manifest (caches are written next to it) with the images linked."""
    shutil.copy(synthetic / 'train.jsonl', tmp_path / 'train.jsonl')
    (tmp_path / 'images').symlink_to(synthetic / 'images')
    return tmp_path


def read_records(path: Path) -> list:
    return [json.loads(line) for line in path.read_text(encoding='utf-8').splitlines()]


def write_lines(path: Path, lines) -> Path:
    path.write_text(''.join(line + '\n' for line in lines), encoding='utf-8')
    return path


class CountingLabeler(ReportLabeler):
    """A ReportLabeler that counts its calls (patched into the dataset's labelling module)."""
    calls = 0

    def __call__(self, report, eye=None):
        CountingLabeler.calls += 1
        return super().__call__(report, eye)


@pytest.fixture
def counting_labeler(monkeypatch):
    CountingLabeler.calls = 0
    monkeypatch.setattr(label_cache_module, 'ReportLabeler', CountingLabeler)
    return CountingLabeler


def test_records_and_labels_from_the_manifest(data_root, counting_labeler):
    records = read_records(data_root / 'train.jsonl')
    classes = ReportLabeler().classes
    lines = []
    for index, record in enumerate(records):
        values = [(index + position) % 3 / 2 for position in range(len(classes))]
        # Labels as a mapping for even records, as a list in class order for odd ones.
        record['labels'] = dict(zip(classes, values)) if index % 2 == 0 else values
        lines.append(json.dumps(record, ensure_ascii=False))
    lines.insert(2, '   ')  # blank lines are not records
    write_lines(data_root / 'train.jsonl', lines)

    dataset = ImageReportDataset('train.jsonl', data_root=str(data_root))
    assert counting_labeler.calls == 0
    assert dataset.metainfo['classes'] == classes
    assert len(dataset) == len(records)
    for index, record in enumerate(records):
        info = dataset.get_data_info(index)
        assert info['img_path'] == str(data_root / record['image'])
        assert info['text'] == record['report']
        assert info['eye'] == record['eye']
        line = index + 1 if index < 2 else index + 2
        assert info['record'] == f'{data_root / "train.jsonl"}:{line}'
        expected = [(index + position) % 3 / 2 for position in range(len(classes))]
        assert info['gt_score'].dtype == np.float32
        np.testing.assert_array_equal(info['gt_score'], expected)
    assert not list(data_root.glob('*.labels-*.npy'))


def test_labels_are_computed_once_then_read_from_the_cache(data_root, counting_labeler):
    records = read_records(data_root / 'train.jsonl')
    labeler = ReportLabeler()
    expected = np.stack([labeler(record['report'], record['eye']) for record in records])
    assert expected.any(), 'the synthetic reports should assert some findings'

    first = ImageReportDataset('train.jsonl', data_root=str(data_root))
    assert counting_labeler.calls == len(records)
    caches = list(data_root.glob('train.jsonl.labels-*.npy'))
    assert len(caches) == 1
    np.testing.assert_array_equal(np.load(caches[0]), expected)

    second = ImageReportDataset('train.jsonl', data_root=str(data_root))
    assert counting_labeler.calls == len(records), 'the second dataset must read the cache'
    for index in range(len(records)):
        np.testing.assert_array_equal(first.get_data_info(index)['gt_score'], expected[index])
        np.testing.assert_array_equal(second.get_data_info(index)['gt_score'], expected[index])


def test_a_progress_bar_while_labelling_when_asked(data_root, capsys):
    ImageReportDataset('train.jsonl', data_root=str(data_root), progress=False)
    assert 'elapsed:' not in capsys.readouterr().err
    for cache in data_root.glob('train.jsonl.labels-*.npy'):
        cache.unlink()
    ImageReportDataset('train.jsonl', data_root=str(data_root), progress=True)
    drawings = capsys.readouterr().err.split('\r')
    assert f'0/{NUM_IMAGES}' in drawings[0] and f'{NUM_IMAGES}/{NUM_IMAGES}' in drawings[-1]
    ImageReportDataset('train.jsonl', data_root=str(data_root), progress=True)  # the cache
    assert 'elapsed:' not in capsys.readouterr().err


def test_a_changed_report_invalidates_the_cache(data_root, counting_labeler):
    ImageReportDataset('train.jsonl', data_root=str(data_root))
    records = read_records(data_root / 'train.jsonl')
    records[1]['report'] = '右眼视网膜可见火焰状出血'
    write_lines(data_root / 'train.jsonl', [json.dumps(r, ensure_ascii=False) for r in records])
    counting_labeler.calls = 0

    dataset = ImageReportDataset('train.jsonl', data_root=str(data_root))
    assert counting_labeler.calls == len(records)
    assert len(list(data_root.glob('train.jsonl.labels-*.npy'))) == 2
    hemorrhage = dataset.metainfo['classes'].index('hemorrhage')
    assert dataset.get_data_info(1)['gt_score'][hemorrhage] == 1.0


def test_a_changed_lexicon_invalidates_the_cache(data_root, counting_labeler):
    records = read_records(data_root / 'train.jsonl')
    records[0]['report'] = '视网膜可见血斑'
    write_lines(data_root / 'train.jsonl', [json.dumps(r, ensure_ascii=False) for r in records])
    # A lexicon that extends a base file: editing the base must invalidate the cache too.
    base = data_root / 'base.yaml'
    base.write_text('extends: default\n', encoding='utf-8')
    lexicon = data_root / 'lexicon.yaml'
    lexicon.write_text('extends: base.yaml\n', encoding='utf-8')

    def build() -> ImageReportDataset:
        return ImageReportDataset('train.jsonl', data_root=str(data_root), lexicon=str(lexicon))

    hemorrhage = build().metainfo['classes'].index('hemorrhage')
    assert counting_labeler.calls == len(records)
    assert build().get_data_info(0)['gt_score'][hemorrhage] == 0.0
    assert counting_labeler.calls == len(records)  # same lexicon: cached

    base.write_text('extends: default\nlabels:\n  hemorrhage:\n    terms: [血斑]\n',
                    encoding='utf-8')
    dataset = build()
    assert counting_labeler.calls == 2 * len(records)
    assert dataset.get_data_info(0)['gt_score'][hemorrhage] == 1.0
    assert len(list(data_root.glob('train.jsonl.labels-*.npy'))) == 2


def test_label_cache_folder_or_none(data_root, tmp_path_factory, counting_labeler):
    ImageReportDataset('train.jsonl', data_root=str(data_root), label_cache=False)
    ImageReportDataset('train.jsonl', data_root=str(data_root), label_cache=False)
    assert counting_labeler.calls == 2 * NUM_IMAGES
    assert not list(data_root.glob('*.npy'))

    cache_dir = tmp_path_factory.mktemp('cache') / 'labels'
    ImageReportDataset('train.jsonl', data_root=str(data_root), label_cache=str(cache_dir))
    ImageReportDataset('train.jsonl', data_root=str(data_root), label_cache=str(cache_dir))
    assert counting_labeler.calls == 3 * NUM_IMAGES
    assert len(list(cache_dir.glob('train.jsonl.labels-*.npy'))) == 1


def test_a_corrupt_cache_is_replaced(data_root, counting_labeler):
    first = ImageReportDataset('train.jsonl', data_root=str(data_root))
    (cache, ) = data_root.glob('train.jsonl.labels-*.npy')
    cache.write_bytes(b'not a numpy file')
    second = ImageReportDataset('train.jsonl', data_root=str(data_root))
    assert counting_labeler.calls == 2 * NUM_IMAGES
    np.testing.assert_array_equal(first.get_data_info(0)['gt_score'],
                                  second.get_data_info(0)['gt_score'])
    assert np.load(cache).shape == (NUM_IMAGES, len(first.metainfo['classes']))


def test_workers_never_label(data_root, counting_labeler, monkeypatch):
    dataset = ImageReportDataset('train.jsonl', data_root=str(data_root), lazy_init=True)
    monkeypatch.setattr(label_cache_module, 'get_worker_info', lambda: object())
    with pytest.raises(RuntimeError, match='main process'):
        dataset.full_init()
    assert counting_labeler.calls == 0
    monkeypatch.undo()

    monkeypatch.setattr(label_cache_module, 'ReportLabeler', CountingLabeler)
    ImageReportDataset('train.jsonl', data_root=str(data_root))  # main process: labels, caches
    assert counting_labeler.calls == NUM_IMAGES
    monkeypatch.setattr(label_cache_module, 'get_worker_info', lambda: object())
    dataset.full_init()  # a worker finds the cache
    assert len(dataset) == NUM_IMAGES
    assert counting_labeler.calls == NUM_IMAGES


GOOD = {'image': 'images/train/train_000000.png', 'report': '眼底未见明显异常', 'eye': 'left'}
BAD_RECORDS = [
    ('{"image": "a.png", "report": ', None, 'not valid JSON'),
    ('["a.png", "report"]', None, 'must be a JSON object'),
    (json.dumps({'report': '眼底正常'}), 'image', 'is missing'),
    (json.dumps({'image': 'a.png'}), 'report', 'is missing'),
    (json.dumps({'image': 'a.png', 'report': 7}), 'report', 'must be a string'),
    (json.dumps({'image': 'a.png', 'report': '  '}), 'report', 'is empty'),
    (json.dumps({'image': '', 'report': '眼底正常'}), 'image', 'is empty'),
    (json.dumps({'image': 'a.png', 'report': '眼底正常', 'eye': 'both'}), 'eye',
     "'left', 'right'"),
    (json.dumps({'image': 'a.png', 'report': '眼底正常', 'labels': [1, 0]}), 'labels',
     'has 2 values but the dataset has 25 classes'),
    (json.dumps({'image': 'a.png', 'report': '眼底正常', 'labels': {'glaucoma': 1}}), 'labels',
     'lacks the classes'),
    (json.dumps({'image': 'a.png', 'report': '眼底正常', 'labels': [2.0] * 25}), 'labels',
     'numbers in [0, 1]'),
    (json.dumps({'image': 'a.png', 'report': '眼底正常', 'labels': 'glaucoma'}), 'labels',
     'must be a mapping'),
]


@pytest.mark.parametrize('line,field,problem', BAD_RECORDS)
def test_a_bad_record_names_the_file_the_line_and_the_field(tmp_path, line, field, problem):
    manifest = write_lines(tmp_path / 'bad.jsonl', [json.dumps(GOOD), '', line])
    with pytest.raises(RecordError) as info:
        ImageReportDataset(str(manifest), label_cache=False)
    message = str(info.value)
    assert message.startswith(f'{manifest}:3: ')
    assert problem in message
    if field is not None:
        assert f"field '{field}'" in message
    assert (info.value.where, info.value.field) == (f'{manifest}:3', field)
    assert 'skip_bad_records=True' in message


def test_a_line_that_is_not_utf8_is_a_bad_record(tmp_path):
    manifest = tmp_path / 'bad.jsonl'
    manifest.write_bytes(json.dumps(GOOD).encode() + b'\n{"report": "\xff"}\n')
    with pytest.raises(RecordError, match=f'{manifest}:2: is not UTF-8'):
        ImageReportDataset(str(manifest), label_cache=False)


def test_a_byte_order_mark_and_blank_lines_are_accepted(tmp_path):
    manifest = tmp_path / 'bom.jsonl'
    manifest.write_text(f'{json.dumps(GOOD)}\n\n  \n{json.dumps(GOOD)}\n', encoding='utf-8-sig')
    dataset = ImageReportDataset(str(manifest), label_cache=False)
    assert [dataset.get_data_info(i)['record'] for i in range(2)] == [f'{manifest}:1',
                                                                      f'{manifest}:4']
    assert dataset.get_data_info(0)['img_path'] == GOOD['image']


def test_skip_bad_records_skips_and_logs(tmp_path, monkeypatch):
    lines = [json.dumps(GOOD)] + [line for line, _, _ in BAD_RECORDS] + [json.dumps(GOOD)]
    manifest = write_lines(tmp_path / 'bad.jsonl', lines)
    warnings = []
    monkeypatch.setattr(MMLogger.get_current_instance(), 'warning', warnings.append)
    dataset = ImageReportDataset(str(manifest), label_cache=False, skip_bad_records=True)
    assert len(dataset) == 2
    assert [dataset.get_data_info(i)['record'] for i in range(2)] == [
        f'{manifest}:1', f'{manifest}:{len(lines)}']
    (summary, ) = [message for message in warnings if 'skipped' in message]
    assert f'skipped {len(BAD_RECORDS)} bad records, kept 2' in summary
    assert f'{manifest}:2: is not valid JSON' in summary  # the first reasons are quoted
    assert f"{manifest}:4: field 'image' is missing" in summary


def test_no_usable_record_is_an_error(tmp_path):
    manifest = write_lines(tmp_path / 'bad.jsonl', ['{', '[]'])
    with pytest.raises(ValueError, match='no usable record'):
        ImageReportDataset(str(manifest), label_cache=False, skip_bad_records=True)
    with pytest.raises(FileNotFoundError, match='does not exist'):
        ImageReportDataset(str(tmp_path / 'missing.jsonl'))


def test_a_missing_or_corrupt_image_names_the_image_and_the_line(data_root):
    records = read_records(data_root / 'train.jsonl')
    corrupt = data_root / 'corrupt.png'
    corrupt.write_bytes(b'\x89PNG\r\n\x1a\n but not really')
    records[1]['image'] = 'missing.png'
    records[2]['image'] = 'corrupt.png'
    write_lines(data_root / 'train.jsonl', [json.dumps(r, ensure_ascii=False) for r in records])
    dataset = ImageReportDataset('train.jsonl', data_root=str(data_root), test_mode=True,
                                 pipeline=[dict(type='LoadImageFromRecord')])
    assert dataset[0]['img'].shape == (64, 64, 3)
    for index, name in ((1, 'missing.png'), (2, 'corrupt.png')):
        with pytest.raises(RecordError) as info:
            dataset[index]
        assert str(data_root / name) in str(info.value)
        assert f'{data_root / "train.jsonl"}:{index + 1}' in str(info.value)
        assert info.value.field == 'image'
    # In a dataloader worker the error reaches the main process with the same text.
    loader = DataLoader(dataset, batch_size=1, sampler=[1], num_workers=1,
                        collate_fn=pseudo_collate)
    with pytest.raises(Exception, match=f'{data_root / "train.jsonl"}:2'):
        next(iter(loader))


def tiny_vilref(image_size: int):
    torch.manual_seed(0)
    return MODELS.build(dict(
        type='ViLReF',
        image_encoder=dict(
            type='ViLReFViT',
            arch=dict(embed_dims=32, num_layers=2, num_heads=2, feedforward_channels=64),
            img_size=image_size,
            patch_size=16),
        text_encoder=dict(
            type='ChineseBertEncoder',
            bert_cfg=dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                          intermediate_size=64)),
        embed_dims=32,
        tokenizer=dict(type='ChineseBertTokenizer', context_length=100)))


def test_end_to_end_dataloader_preprocessor_and_loss(data_root):
    """Config pipeline -> 2 workers -> pseudo_collate -> ViLReFDataPreprocessor -> ViLReF.loss."""
    cfg = Config.fromfile(ROOT / 'configs/_base_/datasets/image_report_pretrain.py')
    loader_cfg = cfg.train_dataloader
    loader_cfg.dataset.update(data_root=str(data_root))
    loader_cfg.dataset.pipeline[1].scale = 64  # the release crops to 224; keep the test small
    loader_cfg.update(batch_size=3, num_workers=2, persistent_workers=False)
    loader = Runner.build_dataloader(loader_cfg, seed=0)
    dataset = loader.dataset
    expected = {dataset.get_data_info(i)['record']: dataset.get_data_info(i)['gt_score']
                for i in range(len(dataset))}

    model = tiny_vilref(image_size=64)
    batches = list(loader)
    assert len(batches) == NUM_IMAGES // 3
    for batch in batches:
        assert isinstance(batch['inputs']['images'], list)  # pseudo_collate keeps lists
        for sample, labels in zip(batch['data_samples'], batch['inputs']['labels']):
            np.testing.assert_array_equal(labels.numpy(), expected[sample.record])
        data = model.data_preprocessor(batch, training=True)
        inputs = data['inputs']
        assert inputs['images'].shape == (3, 3, 64, 64)
        assert inputs['images'].dtype == torch.float32
        assert inputs['text_ids'].shape == (3, 100) and inputs['text_ids'].dtype == torch.long
        assert inputs['labels'].shape == (3, len(dataset.metainfo['classes']))
        losses = model.loss(inputs, data['data_samples'])
        assert math.isfinite(losses['loss'].item())
