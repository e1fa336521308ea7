"""Tests of the synthetic fundus generator (vilref_mm.datasets.synthetic)."""
import json
import os
import re
import runpy
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from vilref_mm.datasets import progress as progress_module
from vilref_mm.datasets.synthetic import (SPLITS, FundusCase, draw_fundus,
                                          generate_synthetic_fundus, label_classes, make_sample,
                                          sample_case, write_report)

REPO = Path(__file__).resolve().parents[2]
COUNTS = {'train': 6, 'val': 3, 'test': 3}
SIZE = 96

# Words of the report that name a finding (a subset of each label's lexicon terms).
KEYWORDS = {
    'diabetic_retinopathy': ('糖尿病', '糖网', 'NPDR', 'PDR'),
    'glaucoma': ('青光眼',),
    'amd': ('黄斑变性', 'AMD'),
    'drusen': ('玻璃膜疣',),
    'rvo': ('静脉阻塞', 'BRVO', 'CRVO'),
    'rao': ('动脉阻塞', 'CRAO'),
    'pathologic_myopia': ('病理性近视', '高度近视'),
    'tessellated_fundus': ('豹纹状',),
    'hypertensive_retinopathy': ('高血压视网膜病变', '动静脉交叉压迫', '动脉硬化'),
    'retinal_detachment': ('视网膜脱离',),
    'macular_hole': ('黄斑裂孔', '黄斑孔'),
    'epiretinal_membrane': ('前膜',),
    'macular_edema': ('水肿',),
    'optic_atrophy': ('视盘色淡，', '苍白', '视神经萎缩'),  # not 视盘色淡红
    'papilledema': ('视盘水肿', '视乳头水肿', '视盘充血水肿'),
    'rnfl_defect': ('神经纤维层缺损', 'RNFLD'),
    'hemorrhage': ('出血',),
    'hard_exudate': ('硬性渗出', '渗出'),
    'cotton_wool_spot': ('棉絮斑', '软性渗出'),
    'microaneurysm': ('微血管瘤', '微动脉瘤'),
    'laser_scar': ('激光', '光凝'),
    'chorioretinal_atrophy': ('弧形斑', '萎缩灶', '视盘旁萎缩', '脉络膜视网膜萎缩'),
    'vitreous_opacity': ('玻璃体', '屈光间质混浊'),
}
NEGATION = re.compile(r'(未见明显|未见|未发现|无明显|无)([^，。；]*)')
CUES = ('可疑', '考虑', '待查', '不除外', '可能', '待排', '疑似')


@pytest.fixture(scope='module')
def dataset(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp('synthetic_fundus')
    generate_synthetic_fundus(out, COUNTS['train'], COUNTS['val'], COUNTS['test'], size=SIZE,
                              seed=3)
    return out


def read_jsonl(path: Path) -> list:
    return [json.loads(line) for line in path.read_text(encoding='utf-8').splitlines()]


def tree_bytes(root: Path) -> dict:
    return {p.relative_to(root).as_posix(): p.read_bytes()
            for p in sorted(root.rglob('*')) if p.is_file()}


def test_layout_and_manifests(dataset):
    classes = label_classes()
    for split in SPLITS:
        records = read_jsonl(dataset / f'{split}.jsonl')
        assert len(records) == COUNTS[split]
        assert len(list((dataset / 'images' / split).glob('*.png'))) == COUNTS[split]
        for record in records:
            assert set(record) == {'image', 'report', 'eye', 'findings'}
            assert record['image'].startswith(f'images/{split}/')
            assert (dataset / record['image']).is_file()
            assert record['eye'] in ('left', 'right')
            assert tuple(record['findings']) == classes  # every key, in label-set order
            assert set(record['findings'].values()) <= {0.0, 0.5, 1.0}
            assert record['report'].strip()
    meta = json.loads((dataset / 'meta.json').read_text(encoding='utf-8'))
    assert meta['seed'] == 3 and meta['size'] == SIZE and meta['counts'] == COUNTS
    assert tuple(meta['classes']) == classes
    assert meta['version']
    # segmentation layouts hold train (training) and val (validation) only
    for task, suffix in (('vessels', '_manual1.png'), ('odoc', '.png')):
        for split, folder in (('train', 'training'), ('val', 'validation')):
            images = sorted((dataset / task / 'images' / folder).glob('*.png'))
            annotations = sorted((dataset / task / 'annotations' / folder).glob('*.png'))
            assert len(images) == len(annotations) == COUNTS[split]
            for image in images:
                assert (dataset / task / 'annotations' / folder / (image.stem + suffix)).is_file()
    assert not list(dataset.glob('**/.*.jsonl.*'))  # no temporary files left behind


def test_same_seed_same_bytes(dataset, tmp_path):
    again = tmp_path / 'again'
    generate_synthetic_fundus(again, COUNTS['train'], COUNTS['val'], COUNTS['test'], size=SIZE,
                              seed=3)
    assert tree_bytes(again) == tree_bytes(dataset)


def test_different_seed_different_data(dataset, tmp_path):
    other = tmp_path / 'other'
    generate_synthetic_fundus(other, 2, 0, 0, size=SIZE, seed=4)
    for name in ('train_000000.png', 'train_000001.png'):
        assert (other / 'images/train' / name).read_bytes() != \
            (dataset / 'images/train' / name).read_bytes()
    assert read_jsonl(other / 'train.jsonl')[:2] != read_jsonl(dataset / 'train.jsonl')[:2]


def test_images_look_like_fundus_photographs(dataset):
    for path in sorted((dataset / 'images').rglob('*.png')):
        image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        assert image.shape == (SIZE, SIZE, 3) and image.dtype == np.uint8
        corners = np.concatenate([image[:4, :4], image[:4, -4:], image[-4:, :4], image[-4:, -4:]])
        assert corners.max() == 0, f'{path.name}: the corners outside the field of view are black'
        inside = cv2.circle(np.zeros((SIZE, SIZE), np.uint8), (SIZE // 2, SIZE // 2),
                            int(SIZE * 0.35), 1, -1).astype(bool)
        blue, green, red = image[inside].mean(0)
        assert red > 1.3 * green and green > blue and red > 80, (path.name, red, green, blue)


def test_segmentation_masks(dataset):
    for path in sorted((dataset / 'vessels/annotations').rglob('*.png')):
        mask = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        assert mask.shape == (SIZE, SIZE) and set(np.unique(mask)) == {0, 1}
        assert 0.03 < mask.mean() < 0.4  # a vessel tree, not a blank or a flood
    for path in sorted((dataset / 'odoc/annotations').rglob('*.png')):
        mask = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        assert set(np.unique(mask)) <= {0, 1, 2} and (mask == 2).any()
        cup = (mask == 1).astype(np.uint8)
        if cup.any():  # the cup lies inside the disc
            ring = cv2.dilate(cup, np.ones((3, 3), np.uint8)) - cup
            assert set(np.unique(mask[ring.astype(bool)])) <= {1, 2}


def test_masks_match_the_image():
    sample = make_sample(0, 'train', 0, size=128)
    drawing = sample.drawing
    gray = cv2.cvtColor(drawing.image, cv2.COLOR_BGR2GRAY).astype(float)
    vessels, disc = drawing.vessels.astype(bool), drawing.disc & ~drawing.cup
    background = ~(vessels | drawing.disc) & (gray > 0)
    assert gray[vessels].mean() < gray[background].mean()  # vessels are darker
    assert gray[disc].mean() > gray[background].mean()  # the disc is brighter
    if drawing.cup.any():
        assert gray[drawing.cup].mean() > gray[disc].mean()  # and its cup brighter still


def _case(findings: dict, eye: str = 'right', cup_to_disc: float = 0.3, **details) -> FundusCase:
    return FundusCase(eye, cup_to_disc, findings, {'load': {}, **details})


def test_reports_by_hand():
    rng = np.random.default_rng(0)
    normal = _case({}, eye='left', foveal_reflex=True)
    dr = _case({'diabetic_retinopathy': 1.0, 'microaneurysm': 1.0, 'hemorrhage': 1.0,
                'hard_exudate': 1.0}, dr_stage='moderate', exudate_pattern='scattered')
    suspect = _case({'glaucoma': 0.5, 'cup_enlargement': 1.0}, cup_to_disc=0.6)
    for _ in range(30):
        report = write_report(normal, rng)
        assert re.search('眼底未见明显异常|正常眼底|眼底正常', report), report
        assert '左眼' in report or 'OS' in report
        asserted = NEGATION.sub('', report)  # what is left once negated findings are cut out
        assert not any(word in asserted for words in KEYWORDS.values() for word in words), report
        assert not any(cue in report for cue in CUES), report
        report = write_report(dr, rng)
        assert re.search('微血管瘤|微动脉瘤', report) and '出血' in report and '渗出' in report
        assert re.search('糖尿病|糖网|NPDR', report) and ('右眼' in report or 'OD' in report)
        assert not any(cue in report for cue in CUES), report  # a certain diagnosis
        for _, negated in NEGATION.findall(report):  # only absent lesions are negated
            assert not re.search('微血管瘤|出血|渗出', negated), report
        report = write_report(suspect, rng)
        assert re.search(r'(C/D|杯盘比)\D{0,2}0\.6', report), report
        assert re.search('(可疑|考虑|不除外|疑似)青光眼|青光眼\\S{0,8}(待查|可能|待排)',
                         report), report
    labels = dr.labels(label_classes())
    assert labels['normal'] == 0 and labels['hemorrhage'] == 1 and labels['glaucoma'] == 0
    assert normal.labels(label_classes())['normal'] == 1
    assert suspect.labels(label_classes())['glaucoma'] == 0.5


def test_generated_reports_name_their_findings():
    for index in range(300):
        sample = make_sample(11, 'test', index, render=False)
        report, findings = sample.report, sample.findings
        eye_words = ('右眼', 'OD') if sample.eye == 'right' else ('左眼', 'OS')
        assert any(word in report for word in eye_words), report
        assert ('左眼' in report or 'OS' in report) != (sample.eye == 'right'), report
        for key, words in KEYWORDS.items():
            if findings[key] > 0:
                assert any(word in report for word in words), (key, report)
        negated = ''.join(text for _, text in NEGATION.findall(report))
        for key in ('hemorrhage', 'microaneurysm', 'drusen', 'cotton_wool_spot'):
            if findings[key] > 0:
                assert not any(word in negated for word in KEYWORDS[key]), (key, report)
        if findings['normal']:
            assert max(v for k, v in findings.items() if k != 'normal') == 0
        if findings['cup_enlargement'] == 0.5:  # only a borderline written ratio gives 0.5
            assert re.search(r'(C/D|杯盘比)\D{0,2}0\.5', report), report


def test_case_mix():
    classes = label_classes()
    counts = dict.fromkeys(classes, 0)
    for index in range(1000):
        labels = sample_case(np.random.default_rng([5, index])).labels(classes)
        for key, value in labels.items():
            counts[key] += value > 0
    assert 200 <= counts['normal'] <= 300  # about a quarter normal
    assert min(counts.values()) >= 15, counts  # every finding of the label set occurs


@pytest.mark.parametrize('finding,details,measure', [
    ('hard_exudate', {'exudate_pattern': 'scattered'}, 'yellow'),
    ('drusen', {}, 'yellow'),
    ('laser_scar', {'laser_pattern': 'panretinal'}, 'dark'),
    ('vitreous_opacity', {'vitreous_type': 'opacity'}, 'blur'),
    ('rao', {}, 'bright'),
    ('tessellated_fundus', {}, 'contrast'),
])
def test_findings_change_the_image(finding, details, measure):
    """Each finding leaves a measurable signature against the same eye without it."""

    def draw(findings):
        case = _case(findings, **details)
        image = draw_fundus(case, 128, np.random.default_rng(1)).image
        inside = cv2.circle(np.zeros((128, 128), np.uint8), (64, 64), 50, 1, -1).astype(bool)
        if measure == 'dark':  # laser scars lie outside the arcades
            inside &= ~cv2.circle(np.zeros((128, 128), np.uint8), (64, 64), 30, 1, -1).astype(
                bool)
        hsv = cv2.cvtColor(image, cv2.COLOR_BGR2HSV)
        gray = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
        return {'yellow': ((hsv[..., 0] > 15) & (hsv[..., 0] < 35) & (hsv[..., 2] > 150))[inside]
                .mean(),
                'dark': (gray[inside] < 0.6 * np.median(gray[inside])).mean(),
                'blur': 1 / (1 + cv2.Laplacian(gray, cv2.CV_64F)[inside].var()),
                'bright': gray[inside].mean(),
                'contrast': gray[inside].std() / gray[inside].mean()}[measure]

    assert draw({finding: 1.0}) > draw({}) * 1.1 + 1e-3


def test_bad_arguments():
    with pytest.raises(ValueError, match='split'):
        make_sample(0, 'validation', 0)
    with pytest.raises(ValueError, match='size'):
        make_sample(0, 'train', 0, size=16)
    with pytest.raises(ValueError, match='num_val'):
        generate_synthetic_fundus('unused', 1, -1, 0)
    with pytest.raises(KeyError, match='not in the label set'):
        _case({'unknown_finding': 1.0}).labels(label_classes())


def test_mmseg_reads_the_segmentation_layouts(dataset):
    pytest.importorskip('mmseg')
    from mmcv.transforms import LoadImageFromFile
    from mmseg.datasets import DRIVEDataset, REFUGEDataset
    from mmseg.datasets.transforms import LoadAnnotations

    for dataset_class, task, values in ((DRIVEDataset, 'vessels', {0, 1}),
                                        (REFUGEDataset, 'odoc', {0, 1, 2})):
        for split, folder in (('train', 'training'), ('val', 'validation')):
            segmentation = dataset_class(
                data_root=str(dataset / task),
                data_prefix=dict(img_path=f'images/{folder}',
                                 seg_map_path=f'annotations/{folder}'),
                pipeline=[LoadImageFromFile(), LoadAnnotations()])
            assert len(segmentation) == COUNTS[split]
            item = segmentation[0]
            assert item['img'].shape == (SIZE, SIZE, 3)
            assert item['gt_seg_map'].shape == (SIZE, SIZE)
            assert set(np.unique(item['gt_seg_map'])) <= values
            assert len(segmentation.metainfo['classes']) == len(values)
            assert (item['gt_seg_map'] > 0).any()


def run_cli(argv: list) -> None:
    runpy.run_path(str(REPO / 'tools/data/make_synthetic_fundus.py'))['main'](argv)


def test_cli(tmp_path, capsys):
    run_cli([str(tmp_path / 'out'), '--num-train', '2', '--num-val', '1', '--num-test', '1',
             '--size', '64', '--seed', '5', '--progress'])
    captured = capsys.readouterr()
    assert 'images/s' in captured.out
    assert '0/4' in captured.err and '4/4' in captured.err.split('\r')[-1], 'a progress bar'
    assert len(read_jsonl(tmp_path / 'out/train.jsonl')) == 2
    assert cv2.imread(str(tmp_path / 'out/images/val/val_000000.png')).shape == (64, 64, 3)
    with pytest.raises(SystemExit, match='--size'):
        run_cli([str(tmp_path / 'small'), '--size', '8'])


@pytest.mark.parametrize('option', [[], ['--no-progress']])
def test_cli_draws_no_bar_off_a_terminal_or_when_asked(tmp_path, capsys, option):
    run_cli([str(tmp_path / 'out'), '--num-train', '1', '--num-val', '1', '--num-test', '0',
             '--size', '32', *option])
    captured = capsys.readouterr()
    assert 'wrote 2 images' in captured.out and captured.err == ''


@pytest.mark.parametrize('num_workers', [1, pytest.param(2, marks=pytest.mark.slow)])
def test_the_bar_advances_per_image_written(tmp_path, capsys, monkeypatch, num_workers):
    monkeypatch.setattr(progress_module, 'REDRAW_SECONDS', 0)  # draw every step
    generate_synthetic_fundus(tmp_path, num_train=3, num_val=1, num_test=0, size=32,
                              num_workers=num_workers, progress=True)
    drawings = capsys.readouterr().err.split('\r')
    assert [re.search(r'\d/4', drawing).group() for drawing in drawings] == [
        '0/4', '1/4', '2/4', '3/4', '4/4']


@pytest.mark.slow
def test_cli_script_with_workers_gives_the_same_bytes(dataset, tmp_path):
    """The script runs as a program, and worker processes do not change a byte."""
    env = {**os.environ, 'PYTHONPATH': os.pathsep.join(filter(None, [
        str(REPO), os.environ.get('PYTHONPATH')]))}
    out = tmp_path / 'out'
    result = subprocess.run(
        [sys.executable, str(REPO / 'tools/data/make_synthetic_fundus.py'), str(out),
         '--num-train', str(COUNTS['train']), '--num-val', str(COUNTS['val']), '--num-test',
         str(COUNTS['test']), '--size', str(SIZE), '--seed', '3', '--workers', '2'],
        capture_output=True, text=True, env=env, timeout=600)
    assert result.returncode == 0, result.stderr
    assert tree_bytes(out) == tree_bytes(dataset)
