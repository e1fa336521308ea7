"""The LMDB layout of the ViLReF / Chinese-CLIP releases: the builder tool and the reader."""
import base64
import io
import json
import os
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import cn_clip
import lmdb
import numpy as np
import pytest
from mmengine.dataset import pseudo_collate
from mmengine.logging import MMLogger
from mmengine.registry import init_default_scope
from PIL import Image
from torch.utils.data import DataLoader

import vilref_mm.datasets  # noqa: F401  registers the datasets and transforms
from vilref_mm.datasets import (ImageReportDataset, ImageReportLMDBDataset, RecordError,
                                write_image_report_lmdb)
from vilref_mm.datasets import image_report_lmdb
from vilref_mm.datasets.few_shot import FewShotDataset
from vilref_mm.datasets.synthetic import generate_synthetic_fundus
from vilref_mm.labeling import ReportLabeler
from tool_modules import load_module

ROOT = Path(__file__).parents[2]
NUM_IMAGES = 4
LOAD = [dict(type='LoadImageFromRecord')]


build_lmdb = load_module('tools/data/build_lmdb.py')


@pytest.fixture(autouse=True)
def mmpretrain_scope():
    init_default_scope('mmpretrain')


@pytest.fixture(scope='module')
def synthetic(tmp_path_factory) -> Path:
    """images/ and train.jsonl (no labels) of 64 px images; the last record reuses an image."""
    out = tmp_path_factory.mktemp('synthetic')
    generate_synthetic_fundus(out, num_train=NUM_IMAGES, num_val=0, num_test=0, size=64, seed=0)
    lines = (out / 'train.jsonl').read_text(encoding='utf-8').splitlines()
    shared = json.loads(lines[0])
    shared.update(report='右眼视盘边界清，C/D约0.7', eye='right')
    (out / 'train.jsonl').write_text('\n'.join(lines + [json.dumps(shared, ensure_ascii=False)])
                                     + '\n', encoding='utf-8')
    return out


@pytest.fixture(scope='module')
def built(synthetic, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp('lmdb') / 'train'
    build_lmdb.main([str(synthetic / 'train.jsonl'), str(out)])
    return out


def test_round_trip_gives_the_manifest_images_texts_and_labels(synthetic, built):
    manifest = ImageReportDataset('train.jsonl', data_root=str(synthetic), pipeline=LOAD)
    stored = ImageReportLMDBDataset(str(built), pipeline=LOAD)
    assert len(stored) == len(manifest) == NUM_IMAGES + 1
    assert stored.metainfo['classes'] == manifest.metainfo['classes'] == ReportLabeler().classes
    for index in range(len(manifest)):
        expected, sample = manifest[index], stored[index]
        assert sample['text'] == expected['text']
        np.testing.assert_array_equal(sample['gt_score'], expected['gt_score'])
        np.testing.assert_array_equal(sample['img'], expected['img'])
        assert sample['img'].dtype == np.uint8
        assert sample['record'] == f'{built}/pairs #{index}'
        assert 'img_bytes' not in sample
    assert stored.get_data_info(NUM_IMAGES)['image_id'] == stored.get_data_info(0)['image_id']


def test_the_layout_is_the_release_one(synthetic, built):
    """Read the folder as the ViLReF release's training code does (ViLReF/training/data.py)."""
    records = [json.loads(line) for line in
               (synthetic / 'train.jsonl').read_text(encoding='utf-8').splitlines()]
    labeler = ReportLabeler()
    pairs = lmdb.open(str(built / 'pairs'), readonly=True, lock=False).begin(buffers=True)
    images = lmdb.open(str(built / 'imgs'), readonly=True, lock=False).begin(buffers=True)
    assert int(pairs.get(b'num_samples').tobytes().decode('utf-8')) == len(records)
    assert int(images.get(b'num_images').tobytes().decode('utf-8')) == NUM_IMAGES
    assert json.loads(bytes(pairs.get(b'classes'))) == list(labeler.classes)
    for index, record in enumerate(records):
        image_id, text_id, raw_text, label = pickle.loads(pairs.get(f'{index}'.encode()).tobytes())
        assert (text_id, raw_text) == (index, record['report'])
        np.testing.assert_array_equal(np.asarray(label, np.float32),
                                      labeler(record['report'], record['eye']))
        image_b64 = images.get(f'{image_id}'.encode()).tobytes().decode('utf8', errors='ignore')
        data = base64.urlsafe_b64decode(image_b64)
        assert data == (synthetic / record['image']).read_bytes()
        assert Image.open(io.BytesIO(data)).size == (64, 64)


def test_chinese_clip_lmdb_without_labels_is_labelled_and_cached(synthetic, tmp_path):
    """An LMDB written by Chinese-CLIP's own script (3-tuples) is labelled from its texts."""
    records = [json.loads(line) for line in
               (synthetic / 'train.jsonl').read_text(encoding='utf-8').splitlines()]
    images = sorted({record['image'] for record in records})
    source = tmp_path / 'source'
    source.mkdir()
    with open(source / 'train_imgs.tsv', 'w', encoding='utf-8') as tsv:
        for image_id, image in enumerate(images):
            encoded = base64.urlsafe_b64encode((synthetic / image).read_bytes()).decode()
            tsv.write(f'{image_id}\t{encoded}\n')
    with open(source / 'train_texts.jsonl', 'w', encoding='utf-8') as texts:
        for text_id, record in enumerate(records):
            texts.write(json.dumps({'text_id': text_id, 'text': 'OD：' + record['report'],
                                    'image_ids': [images.index(record['image'])]},
                                   ensure_ascii=False) + '\n')
    script = Path(cn_clip.__file__).parent / 'preprocess/build_lmdb_dataset.py'
    subprocess.run([sys.executable, str(script), '--data_dir', str(source), '--splits', 'train',
                    '--lmdb_dir', str(tmp_path / 'lmdb')], check=True, capture_output=True)

    dataset = ImageReportLMDBDataset(str(tmp_path / 'lmdb/train'), strip_text_prefix=3)
    assert len(dataset) == len(records)
    labeler = ReportLabeler()
    for index, record in enumerate(records):
        info = dataset.get_data_info(index)
        assert info['text'] == record['report']  # the "OD：" prefix is dropped
        # Labelled from the whole stored text, which names the right eye.
        np.testing.assert_array_equal(info['gt_score'], labeler('OD：' + record['report']))
    assert len(list(tmp_path.glob('lmdb/train.labels-*.npy'))) == 1


def write_pairs(folder: Path, pairs, images=None, num_samples=None) -> Path:
    """A hand-made LMDB folder: ``pairs`` are raw values (pickled bytes) by index."""
    folder.mkdir(exist_ok=True)
    for name, entries in (('pairs', {**{str(i): v for i, v in enumerate(pairs)},
                                     'num_samples': str(num_samples or len(pairs)).encode()}),
                          ('imgs', {**(images or {}), 'num_images': str(len(images or {}))
                                    .encode()})):
        env = lmdb.open(str(folder / name), map_size=1 << 24)
        with env.begin(write=True) as txn:
            for key, value in entries.items():
                txn.put(key.encode(), value)
        env.close()
    return folder


PNG = base64.urlsafe_b64encode(
    (lambda buffer: (Image.new('RGB', (8, 8)).save(buffer, 'PNG'), buffer.getvalue())[1])(
        io.BytesIO()))
GOOD_PAIR = pickle.dumps((0, 0, '眼底未见明显异常', [0.0] * 25))
BAD_PAIRS = [
    (pickle.dumps(os.getcwd), None, 'cannot be unpickled'),
    (b'not a pickle', None, 'cannot be unpickled'),
    (pickle.dumps((0, 0)), None, 'must be (image_id, text_id, text)'),
    (pickle.dumps((0, 0, '')), 'text', 'is empty'),
    (pickle.dumps((0, 0, b'bytes')), 'text', 'must be a string'),
    (pickle.dumps((7, 0, '眼底正常', [0.0] * 25)), 'image_id', 'has no image'),
    (pickle.dumps((0, 0, '眼底正常', [0.0] * 3)), 'label', 'has 3 values'),
    (None, None, 'is missing although num_samples counts it'),
]


@pytest.mark.parametrize('value,field,problem', BAD_PAIRS)
def test_a_bad_pair_names_the_folder_the_pair_and_the_field(tmp_path, value, field, problem):
    pairs = [GOOD_PAIR] + ([value] if value is not None else [])
    folder = write_pairs(tmp_path, pairs, {'0': PNG}, num_samples=2)
    with pytest.raises(RecordError) as info:
        ImageReportLMDBDataset(str(folder), label_cache=False)
    assert str(info.value).startswith(f'{folder}/pairs #1: ')
    assert problem in str(info.value)
    assert info.value.field == field

    dataset = ImageReportLMDBDataset(str(folder), label_cache=False, skip_bad_records=True)
    assert len(dataset) == 1


def test_numpy_labels_are_accepted_and_objects_refused(tmp_path):
    label = np.linspace(0, 1, 25, dtype=np.float64)
    folder = write_pairs(tmp_path, [pickle.dumps((0, 0, '眼底正常', label))], {'0': PNG})
    dataset = ImageReportLMDBDataset(str(folder), label_cache=False, pipeline=LOAD)
    np.testing.assert_allclose(dataset[0]['gt_score'], label, rtol=1e-6)
    assert dataset[0]['img'].shape == (8, 8, 3)
    with pytest.raises(RecordError, match='posix.system'):
        ImageReportLMDBDataset(str(write_pairs(tmp_path / 'evil', [pickle.dumps(
            (0, 0, '眼底正常', os.system))], {'0': PNG})), label_cache=False)


def test_a_corrupt_stored_image_names_the_pair(tmp_path):
    folder = write_pairs(tmp_path, [GOOD_PAIR], {'0': base64.urlsafe_b64encode(b'garbage')})
    dataset = ImageReportLMDBDataset(str(folder), label_cache=False, pipeline=LOAD)
    with pytest.raises(RecordError, match=rf"{folder}/pairs #0: field 'image' cannot load"):
        dataset[0]


def test_workers_open_their_own_environment(built):
    dataset = ImageReportLMDBDataset(str(built), pipeline=LOAD)
    first = dataset[0]['img']  # opens the environment in this process
    pickle.dumps(dataset)  # an open environment does not travel with the dataset
    loader = DataLoader(dataset, batch_size=2, num_workers=2, collate_fn=pseudo_collate)
    images = [image for batch in loader for image in batch['img']]
    assert len(images) == len(dataset)
    np.testing.assert_array_equal(images[0], first)


def test_the_builder_refuses_to_overwrite_unless_asked(synthetic, built, tmp_path):
    out = tmp_path / 'copy'
    shutil.copytree(built, out)
    with pytest.raises(SystemExit, match='exists and is not empty'):
        build_lmdb.main([str(synthetic / 'train.jsonl'), str(out)])
    before = ImageReportLMDBDataset(str(out))
    assert len(before) == NUM_IMAGES + 1

    manifest = tmp_path / 'two.jsonl'
    manifest.write_text(''.join((synthetic / 'train.jsonl').read_text(encoding='utf-8')
                                .splitlines(keepends=True)[:2]), encoding='utf-8')
    build_lmdb.main([str(manifest), str(out), '--data-root', str(synthetic), '--overwrite'])
    assert len(ImageReportLMDBDataset(str(out))) == 2
    assert sorted(path.name for path in tmp_path.iterdir()) == sorted(
        ['copy', 'two.jsonl'] + [path.name for path in tmp_path.glob('two.jsonl.labels-*')])


def test_the_builder_skips_missing_images_when_asked(synthetic, tmp_path):
    lines = (synthetic / 'train.jsonl').read_text(encoding='utf-8').splitlines()
    missing = json.loads(lines[1])
    missing['image'] = 'images/none.png'
    manifest = tmp_path / 'train.jsonl'
    manifest.write_text('\n'.join([lines[0], json.dumps(missing, ensure_ascii=False)]) + '\n',
                        encoding='utf-8')
    with pytest.raises(SystemExit, match=rf"{manifest}:2: field 'image' cannot read"):
        build_lmdb.main([str(manifest), str(tmp_path / 'out'), '--data-root', str(synthetic)])
    assert not (tmp_path / 'out').exists()
    build_lmdb.main([str(manifest), str(tmp_path / 'out'), '--data-root', str(synthetic),
                     '--skip-bad-records'])
    assert len(ImageReportLMDBDataset(str(tmp_path / 'out'))) == 1


@pytest.mark.parametrize('option', [['--progress'], ['--no-progress'], []])
def test_the_builder_draws_bars_of_labelling_and_writing_when_asked(synthetic, tmp_path, capsys,
                                                                    option):
    manifest = tmp_path / 'train.jsonl'
    shutil.copy(synthetic / 'train.jsonl', manifest)  # no label cache yet: labelled here
    build_lmdb.main([str(manifest), str(tmp_path / 'out'), '--data-root', str(synthetic),
                     *option])
    captured = capsys.readouterr()
    assert f'wrote {NUM_IMAGES + 1} pairs' in captured.out
    # The last drawing of each bar (a bar redraws after a '\r' and ends with a '\n').
    bars = [line.split('\r')[-1] for line in captured.err.split('\n') if 'elapsed:' in line]
    if option == ['--progress']:
        done = f'{NUM_IMAGES + 1}/{NUM_IMAGES + 1}'
        assert len(bars) == 2 and all(done in bar for bar in bars), bars
    else:  # off a terminal, or asked to be quiet
        assert bars == []


def test_write_takes_the_manifest_dataset(synthetic, tmp_path):
    dataset = ImageReportDataset('train.jsonl', data_root=str(synthetic))
    with pytest.raises(TypeError, match='dataset must be an ImageReportDataset'):
        write_image_report_lmdb(dataset.data_list, tmp_path / 'out')
    summary = write_image_report_lmdb(dataset, tmp_path / 'out')
    assert summary == dict(num_samples=NUM_IMAGES + 1, num_images=NUM_IMAGES, num_resized=0,
                           num_skipped=0)
    assert len(ImageReportLMDBDataset(str(tmp_path / 'out'))) == NUM_IMAGES + 1


def test_no_usable_record_names_the_manifest(synthetic, tmp_path):
    record = json.loads((synthetic / 'train.jsonl').read_text(encoding='utf-8').splitlines()[0])
    record['image'] = 'images/none.png'
    manifest = tmp_path / 'train.jsonl'
    manifest.write_text(json.dumps(record, ensure_ascii=False) + '\n', encoding='utf-8')
    with pytest.raises(SystemExit, match=rf'{manifest}: no usable record'):
        build_lmdb.main([str(manifest), str(tmp_path / 'out'), '--data-root', str(synthetic),
                         '--skip-bad-records'])
    assert not (tmp_path / 'out').exists()


def test_an_unreadable_image_is_read_and_quoted_once(synthetic, tmp_path, monkeypatch):
    lines = (synthetic / 'train.jsonl').read_text(encoding='utf-8').splitlines()
    missing = json.loads(lines[1])
    missing['image'] = 'images/none.png'
    manifest = tmp_path / 'train.jsonl'
    manifest.write_text('\n'.join([lines[0]] + [json.dumps(missing)] * 3) + '\n',
                        encoding='utf-8')
    warnings = []
    monkeypatch.setattr(MMLogger.get_current_instance(), 'warning', warnings.append)
    dataset = ImageReportDataset(str(manifest), data_prefix=dict(img_path=str(synthetic)))
    summary = write_image_report_lmdb(dataset, tmp_path / 'out', skip_bad_records=True)
    assert summary == dict(num_samples=1, num_images=1, num_resized=0, num_skipped=3)
    (message, ) = [warning for warning in warnings if 'skipped 3 bad records' in warning]
    assert message.count('cannot read') == 1
    assert f"{manifest}:3: field 'image' uses {synthetic}/images/none.png, which cannot be " \
           f'read (see {manifest}:2)' in message


def test_the_builder_explains_a_file_as_out_dir_and_lmdb_errors(synthetic, tmp_path,
                                                               monkeypatch):
    out = tmp_path / 'out'
    out.write_text('not a folder')
    with pytest.raises(SystemExit, match=rf'error: {out} is a file, not a folder'):
        build_lmdb.main([str(synthetic / 'train.jsonl'), str(out)])
    monkeypatch.setattr(image_report_lmdb, '_map_size', lambda infos, max_size: 1 << 13)
    with pytest.raises(SystemExit, match=rf'error: cannot write the LMDB {tmp_path}/new '
                       r'\(MapFullError: .*MDB_MAP_FULL'):
        build_lmdb.main([str(synthetic / 'train.jsonl'), str(tmp_path / 'new')])
    assert [path.name for path in tmp_path.iterdir()] == ['out']


def test_get_data_info_reads_no_image(built, monkeypatch):
    dataset = ImageReportLMDBDataset(str(built), pipeline=LOAD)
    opened = []
    open_readonly = image_report_lmdb.open_readonly
    monkeypatch.setattr(image_report_lmdb, 'open_readonly',
                        lambda path: opened.append(Path(path).name) or open_readonly(path))
    infos = [dataset.get_data_info(index) for index in range(len(dataset))]
    subset = FewShotDataset(dataset, fraction=0.5)
    subset.get_cat_ids(0)
    assert opened == [] and not any('img_bytes' in info for info in infos)
    assert subset[0]['img'].shape == (64, 64, 3)
    assert opened == ['imgs']


def test_a_stored_image_is_decoded_only_when_loaded(tmp_path):
    folder = write_pairs(tmp_path, [GOOD_PAIR], {'0': b'abc'})
    dataset = ImageReportLMDBDataset(str(folder), label_cache=False, pipeline=LOAD)
    assert dataset.get_data_info(0)['image_id'] == '0'
    with pytest.raises(RecordError, match=rf"{folder}/pairs #0: field 'image_id' the image "
                       r"'0' in .* is not url-safe base64"):
        dataset[0]


def test_an_image_missing_at_read_time_is_reported_missing(tmp_path):
    folder = write_pairs(tmp_path / 'lmdb', [GOOD_PAIR], {'0': PNG})
    dataset = ImageReportLMDBDataset(str(folder), label_cache=False, pipeline=LOAD)
    write_pairs(tmp_path / 'rebuilt', [GOOD_PAIR], {'1': PNG})
    # The old folder is kept, so that the new data.mdb cannot reuse its inode.
    os.replace(folder / 'imgs', tmp_path / 'old_imgs')
    os.replace(tmp_path / 'rebuilt' / 'imgs', folder / 'imgs')
    with pytest.raises(RecordError) as info:
        dataset[0]
    assert str(info.value).startswith(
        f"{folder}/pairs #0: field 'image_id' the image '0' is missing from {folder}/imgs")
    assert 'rebuild the LMDB with tools/data/build_lmdb.py' in str(info.value)


def test_the_builder_stores_large_images_presized(synthetic, tmp_path, capsys):
    """--max-size: a large image re-encoded as a JPEG with its aspect, a small one as it is."""
    wide = np.random.default_rng(0).integers(0, 256, (60, 160, 3), dtype=np.uint8)
    Image.fromarray(wide).save(tmp_path / 'wide.png')
    records = [json.loads(line) for line in
               (synthetic / 'train.jsonl').read_text(encoding='utf-8').splitlines()[:2]]
    records[1]['image'] = str(tmp_path / 'wide.png')
    manifest = tmp_path / 'train.jsonl'
    manifest.write_text(''.join(json.dumps(record, ensure_ascii=False) + '\n'
                                for record in records), encoding='utf-8')
    out = tmp_path / 'out'
    build_lmdb.main([str(manifest), str(out), '--data-root', str(synthetic), '--max-size', '80'])
    assert '2 images, 1 re-encoded to at most 80 px' in capsys.readouterr().out
    dataset = ImageReportLMDBDataset(str(out), pipeline=LOAD)
    small, large = (dataset._read_image(dataset.get_data_info(index)) for index in (0, 1))
    assert small == (synthetic / records[0]['image']).read_bytes()  # 64 px: byte for byte
    image = Image.open(io.BytesIO(large))
    assert (image.format, image.size) == ('JPEG', (80, 30))
    assert dataset[1]['img'].shape == (30, 80, 3)
    # The LMDB's bytes go through the reduced decoding as a file's do.
    reduced = ImageReportLMDBDataset(str(out), pipeline=[
        dict(type='LoadImageFromRecord', decode_min_side=10)])
    assert reduced[1]['img'].shape == (15, 40, 3)
    np.testing.assert_array_equal(reduced[0]['img'], dataset[0]['img'])  # PNG: in full

    with pytest.raises(SystemExit):
        build_lmdb.main([str(manifest), str(tmp_path / 'bad'), '--max-size', '0'])
    assert 'max_size must be a positive number of pixels' in capsys.readouterr().err
    assert not (tmp_path / 'bad').exists()
