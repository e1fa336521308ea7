"""Pre-sizing images: the re-encoding function and tools/data/presize_images.py."""
import io
import json
from pathlib import Path

import numpy as np
import pytest
from mmengine.logging import MMLogger
from PIL import Image

from vilref_mm.datasets import ImageReportDataset, RecordError
from vilref_mm.datasets.presize import presize_image, read_image_file
from vilref_mm.datasets.synthetic import make_sample
from tool_modules import load_module

ROOT = Path(__file__).parents[2]
REPORT = '右眼视盘边界清，C/D约0.7'


presize_images = load_module('tools/data/presize_images.py')


def encode(image: Image.Image, format: str = 'JPEG', **params) -> bytes:
    out = io.BytesIO()
    image.save(out, format, **params)
    return out.getvalue()


@pytest.fixture(scope='module')
def fundus() -> Image.Image:
    """A 320 x 240 synthetic fundus photograph (RGB)."""
    image = make_sample(0, 'train', 0, size=320).drawing.image[40:280, :, ::-1]
    return Image.fromarray(np.ascontiguousarray(image))


def test_a_large_image_is_shrunk_with_its_aspect_and_a_small_one_kept(fundus):
    data = encode(fundus, 'PNG')
    shrunk = presize_image(data, 160)
    image = Image.open(io.BytesIO(shrunk))
    assert (image.format, image.mode, image.size) == ('JPEG', 'RGB', (160, 120))
    # A Lanczos resize of the original, saved as a quality-95 JPEG.
    expected = Image.open(io.BytesIO(encode(fundus.resize((160, 120), Image.LANCZOS),
                                            quality=95)))
    np.testing.assert_array_equal(np.asarray(image), np.asarray(expected))
    assert presize_image(data, 320) is data  # no larger than max_size: the same bytes
    assert len(presize_image(data, 160, quality=50)) < len(shrunk)


def test_modes_orientation_and_unreadable_images(fundus):
    grey = Image.open(io.BytesIO(presize_image(encode(fundus.convert('L')), 100)))
    assert (grey.mode, grey.size) == ('L', (100, 75))
    rgba = Image.open(io.BytesIO(presize_image(encode(fundus.convert('RGBA'), 'PNG'), 100)))
    assert (rgba.format, rgba.mode) == ('JPEG', 'RGB')
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    upright = Image.open(io.BytesIO(presize_image(encode(fundus, exif=exif.tobytes()), 100)))
    assert upright.size == (75, 100) and upright.getexif().get(0x0112) is None
    wide = Image.new('I;16', (80, 40))
    with pytest.raises(ValueError, match='mode I;16'):
        presize_image(encode(wide, 'PNG'), 64)
    with pytest.raises(ValueError, match='not a readable image'):
        presize_image(b'not an image', 64)
    with pytest.raises(ValueError, match='max_size must be a positive'):
        presize_image(encode(fundus), 0)


def test_read_image_file_names_the_record(tmp_path, fundus):
    path = tmp_path / 'a.png'
    path.write_bytes(encode(fundus, 'PNG'))
    assert read_image_file(str(path), 'm.jsonl:1') == (path.read_bytes(), False)
    data, resized = read_image_file(str(path), 'm.jsonl:1', max_size=100)
    assert resized and Image.open(io.BytesIO(data)).size == (100, 75)
    with pytest.raises(RecordError, match=r"m.jsonl:2: field 'image' cannot read .*none.png"):
        read_image_file(str(tmp_path / 'none.png'), 'm.jsonl:2')
    (tmp_path / 'bad.jpg').write_bytes(b'\xff\xd8\xff garbage')
    with pytest.raises(RecordError, match=r"m.jsonl:3: field 'image' .*bad.jpg is not a "
                       'readable image'):
        read_image_file(str(tmp_path / 'bad.jpg'), 'm.jsonl:3', max_size=100)


@pytest.fixture
def manifest(tmp_path, fundus) -> Path:
    """data/: a large PNG, a small JPEG, an image outside data/; train.jsonl uses the large
    one twice."""
    data = tmp_path / 'data'
    (data / 'images').mkdir(parents=True)
    fundus.save(data / 'images' / 'large.png')
    fundus.resize((64, 48)).save(data / 'images' / 'small.jpg', quality=90)
    fundus.save(tmp_path / 'outside.jpg', quality=90)
    records = [dict(image='images/large.png', report=REPORT, eye='right', id='0001'),
               dict(image='images/small.jpg', report=REPORT, findings={'normal': 1.0}),
               dict(image=str(tmp_path / 'outside.jpg'), report=REPORT),
               dict(image='images/large.png', report=REPORT + '。', eye='left')]
    path = data / 'train.jsonl'
    path.write_text(''.join(json.dumps(record, ensure_ascii=False) + '\n' for record in records)
                    + '\n', encoding='utf-8')
    return path


def test_the_tool_writes_copies_and_a_manifest_pointing_at_them(manifest, tmp_path, capsys):
    out = tmp_path / 'out'
    presize_images.main([str(manifest), str(out), '--max-size', '100'])
    assert '3 images (2 re-encoded' in capsys.readouterr().out
    records = [json.loads(line) for line in (out / 'train.jsonl').read_text(
        encoding='utf-8').splitlines()]
    originals = [json.loads(line) for line in manifest.read_text(
        encoding='utf-8').splitlines() if line]
    outside = str(tmp_path / 'outside.jpg').lstrip('/')
    assert [record['image'] for record in records] == [
        'images/large.jpg', 'images/small.jpg', outside, 'images/large.jpg']
    for record, original in zip(records, originals):  # only `image` changes
        assert {**record, 'image': original['image']} == original
    assert Image.open(out / 'images/large.jpg').size == (100, 75)
    assert Image.open(out / outside).size == (100, 75)
    assert (out / 'images/small.jpg').read_bytes() == (
        manifest.parent / 'images/small.jpg').read_bytes()
    assert sorted(p.name for p in out.rglob('*') if p.name.startswith('.')) == []
    dataset = ImageReportDataset('train.jsonl', data_root=str(out), label_cache=False,
                                 pipeline=[dict(type='LoadImageFromRecord')])
    assert dataset[3]['img'].shape == (75, 100, 3)

    with pytest.raises(SystemExit, match=f'{out}/train.jsonl exists'):
        presize_images.main([str(manifest), str(out), '--max-size', '50'])
    assert Image.open(out / 'images/large.jpg').size == (100, 75)
    presize_images.main([str(manifest), str(out), '--max-size', '50', '--overwrite'])
    assert Image.open(out / 'images/large.jpg').size == (50, 38)


def test_bad_records_are_named_and_no_manifest_is_written(manifest, tmp_path, capsys,
                                                          monkeypatch):
    lines = manifest.read_text(encoding='utf-8').splitlines()[:2] + [
        '{"image": "images/none.png", "report": "x"}', '{"image": "images/small.jpg"}']
    manifest.write_text('\n'.join(lines) + '\n', encoding='utf-8')
    out = tmp_path / 'out'
    # Every line is checked before any image is read.
    with pytest.raises(SystemExit, match=rf"{manifest}:4: field 'report' is missing"):
        presize_images.main([str(manifest), str(out), '--max-size', '100'])
    assert not out.exists()
    manifest.write_text('\n'.join(lines[:3]) + '\n', encoding='utf-8')
    with pytest.raises(SystemExit, match=rf"{manifest}:3: field 'image' cannot read "
                       r'.*none.png .*skip_bad_records=True'):
        presize_images.main([str(manifest), str(out), '--max-size', '100'])
    assert not (out / 'train.jsonl').exists()
    assert [p.name for p in out.rglob('*') if p.name.startswith('.')] == []  # no temporary

    manifest.write_text('\n'.join(lines) + '\n', encoding='utf-8')
    warnings = []
    monkeypatch.setattr(MMLogger.get_current_instance(), 'warning', warnings.append)
    presize_images.main([str(manifest), str(out), '--max-size', '100', '--skip-bad-records'])
    assert len((out / 'train.jsonl').read_text(encoding='utf-8').splitlines()) == 2
    assert f"skipped 2 bad records, kept 2; first 2: {manifest}:4: field 'report'" in warnings[0]
    assert f"{manifest}:3: field 'image' cannot read" in warnings[0]
    with pytest.raises(SystemExit):
        presize_images.main([str(manifest), str(out), '--max-size', '0'])
    assert 'max_size must be a positive number of pixels' in capsys.readouterr().err


def test_copies_never_replace_sources_or_each_other(manifest, fundus, tmp_path):
    data = manifest.parent
    with pytest.raises(SystemExit, match=rf"{manifest}:2: field 'image' the copy of "
                       rf'{data}/images/small.jpg would replace {data}/images/small.jpg, the '
                       rf'image of {manifest}:2; choose an OUT_DIR outside'):
        presize_images.main([str(manifest), str(data), '--max-size', '100', '--overwrite'])
    fundus.save(data / 'images' / 'large.jpg')
    original = (data / 'images' / 'large.jpg').read_bytes()
    with open(manifest, 'a', encoding='utf-8') as file:
        file.write(json.dumps(dict(image='images/large.jpg', report=REPORT)) + '\n')
    # The copy of large.png would be large.jpg: another image of the manifest, or its copy.
    with pytest.raises(SystemExit, match=rf"{manifest}:1: field 'image' the copy of "
                       rf'{data}/images/large.png would replace {data}/images/large.jpg, the '
                       rf'image of {manifest}:6'):
        presize_images.main([str(manifest), str(data), '--max-size', '100', '--overwrite'])
    assert (data / 'images' / 'large.jpg').read_bytes() == original
    with pytest.raises(SystemExit, match=rf"{manifest}:6: field 'image' the copy of "
                       rf'{data}/images/large.jpg would be {tmp_path}/out/images/large.jpg, as '
                       rf'is that of {data}/images/large.png'):
        presize_images.main([str(manifest), str(tmp_path / 'out'), '--max-size', '100'])
    assert manifest.read_text(encoding='utf-8').count('\n') == 6  # unchanged
