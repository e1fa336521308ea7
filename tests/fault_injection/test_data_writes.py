"""Killed data writers leave nothing half-written and their debris is removed by the next run;
bad records and unreadable images are named.

- tools/data/build_lmdb.py killed (SIGKILL) at random moments of the write;
- tools/data/label_reports.py after a writer killed in the middle of its output;
- a manifest record without ``image``;
- tools/zero_shot.py and tools/extract_features.py on a folder with corrupt images.
"""
import json
import multiprocessing
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from mmengine.logging import MMLogger
from mmengine.registry import init_default_scope
from PIL import Image

from vilref_mm.apis import UnreadableImageError, ViLReFFeatureExtractor, ZeroShotInferencer
from vilref_mm.datasets import ImageReportLMDBDataset
from vilref_mm.labeling import ReportLabeler
from tool_modules import load_module

ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, 'PYTHONPATH': os.pathsep.join(
    filter(None, [str(ROOT), os.environ.get('PYTHONPATH')]))}
NUM_PAIRS = 300  # random 192 px JPEGs (13 MB): the write takes a fraction of a second
NUM_KILLS = 3
REPORT = '右眼视盘边界清，C/D约0.7'


# The tiny random ViLReF and its checkpoint of the inference API tests.
_apis = load_module(ROOT / 'tests/apis/conftest.py', 'apis_conftest')
tiny_config, tiny_checkpoint, tiny_model = (_apis.tiny_config, _apis.tiny_checkpoint,
                                            _apis.tiny_model)
BUILD_LMDB = load_module(ROOT / 'tools/data/build_lmdb.py', 'build_lmdb')


def temporaries(destination: Path):
    """The hidden temporaries of ``destination`` (``.NAME.PID.RANDOM...``) beside it."""
    return sorted(destination.parent.glob(f'.{destination.name}.*'))


def dead_pid() -> int:
    """The id of a process that has ended (and been reaped)."""
    process = subprocess.Popen([sys.executable, '-c', 'pass'])
    process.wait()
    return process.pid


@pytest.fixture(scope='module')
def manifest(tmp_path_factory) -> Path:
    """NUM_PAIRS labelled records of distinct random JPEGs."""
    folder = tmp_path_factory.mktemp('pairs')
    (folder / 'images').mkdir()
    rng = np.random.default_rng(0)
    labels = [0.0] * len(ReportLabeler().classes)
    lines = []
    for index in range(NUM_PAIRS):
        pixels = rng.integers(0, 256, (192, 192, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / 'images' / f'{index:03d}.jpg', quality=95)
        lines.append(json.dumps(dict(image=f'images/{index:03d}.jpg', report=f'{REPORT}#{index}',
                                     labels=labels), ensure_ascii=False) + '\n')
    path = folder / 'train.jsonl'
    path.write_text(''.join(lines), encoding='utf-8')
    return path


def kill_during_the_write(argv: list, out: Path, rng: random.Random) -> list:
    """Run build_lmdb.py with ``argv`` in a forked process, SIGKILL it at a random moment while
    its temporary folders exist, and return them.

    The process (forked from this one, to skip the imports) is stopped with SIGSTOP first, so
    the folders seen are still there when it is killed; a moment after the write ended is
    drawn again from a shorter span.
    """
    longest_delay = 0.2
    for _ in range(10):
        process = multiprocessing.get_context('fork').Process(target=BUILD_LMDB.main,
                                                              args=(argv, ))
        process.start()
        prefix = f'.{out.name}.{process.pid}.'
        while process.is_alive() and not any(
                path.name.startswith(prefix) for path in temporaries(out)):
            time.sleep(0.001)
        if process.exitcode is None:  # not reaped: its id cannot have been reused
            time.sleep(rng.uniform(0, longest_delay))
            os.kill(process.pid, signal.SIGSTOP)
            started = [path for path in temporaries(out) if path.name.startswith(prefix)]
            os.kill(process.pid, signal.SIGKILL)
            process.join()
            if started:
                assert process.exitcode == -signal.SIGKILL
                return started
        process.join()
        longest_delay /= 2
    pytest.fail('build_lmdb.py finished before it could be killed 10 times in a row; '
                'give it more images')


def check_lmdb(out: Path, manifest: Path) -> None:
    """``out`` holds every pair of ``manifest``, with its image, and nothing else is beside
    it."""
    dataset = ImageReportLMDBDataset(str(out), label_cache=False)
    assert len(dataset) == NUM_PAIRS
    records = [json.loads(line) for line in manifest.read_text(encoding='utf-8').splitlines()]
    for index in (0, NUM_PAIRS - 1):
        info = dataset.get_data_info(index)
        assert info['text'] == records[index]['report']
        assert dataset._read_image(info) == (manifest.parent / records[index]['image']
                                             ).read_bytes()
    assert temporaries(out) == []


def test_a_killed_lmdb_build_is_cleaned_by_the_next_run(manifest, tmp_path, monkeypatch):
    init_default_scope('mmpretrain')
    warnings = []
    monkeypatch.setattr(MMLogger.get_current_instance(), 'warning', warnings.append)
    out = tmp_path / 'lmdb' / 'train'
    argv = [str(manifest), str(out), '--overwrite']
    rng = random.Random(13)
    for _ in range(NUM_KILLS):
        debris = kill_during_the_write(argv, out, rng)
        assert all(folder.is_dir() for folder in debris)
        if out.exists():  # complete: the previous build, or already the new one (the kill
            # landed while the old one was being deleted); else it was killed between the two
            # renames that replace it, and the rerun builds it
            assert len(ImageReportLMDBDataset(str(out), label_cache=False)) == NUM_PAIRS

        warnings.clear()
        BUILD_LMDB.main(argv)
        (message, ) = warnings
        assert f'removed {len(debris)} stale temporary folder(s) of a killed run' in message
        assert all(str(folder) in message for folder in debris)
        check_lmdb(out, manifest)


def test_a_killed_label_reports_output_is_cleaned_by_the_next_run(tmp_path, capsys):
    source = tmp_path / 'in.jsonl'
    source.write_text(''.join(json.dumps(dict(image=f'{index}.png', report=REPORT)) + '\n'
                              for index in range(3)), encoding='utf-8')
    target = tmp_path / 'out.jsonl'
    # A writer killed in the middle of the output (it kills itself after a partial record).
    killed = subprocess.run([sys.executable, '-c', (
        'import importlib.util, os, signal, sys\n'
        'spec = importlib.util.spec_from_file_location("fileio", sys.argv[1])\n'
        'fileio = importlib.util.module_from_spec(spec)\n'
        'spec.loader.exec_module(fileio)\n'
        'with fileio.atomic_open(sys.argv[2], "w", encoding="utf-8") as file:\n'
        '    file.write("{\\"image\\": \\"0.png\\", \\"rep")\n'
        '    file.flush()\n'
        '    os.kill(os.getpid(), signal.SIGKILL)\n'),
        str(ROOT / 'vilref_mm/utils/fileio.py'), str(target)], timeout=60)
    assert killed.returncode == -signal.SIGKILL
    (debris, ) = temporaries(target)
    assert debris.name.endswith('.tmp') and not target.exists()
    # A temporary of a writer that still runs (this process) is left alone.
    in_progress = tmp_path / f'.out.jsonl.{os.getpid()}.inprogress.tmp'
    in_progress.write_text('{"image"', encoding='utf-8')

    load_module(ROOT / 'tools/data/label_reports.py', 'label_reports').main(
        [str(source), str(target)])
    written = [json.loads(line) for line in target.read_text(encoding='utf-8').splitlines()]
    assert [record['image'] for record in written] == ['0.png', '1.png', '2.png']
    assert all(len(record['labels']) == len(ReportLabeler().classes) for record in written)
    assert temporaries(target) == [in_progress]
    assert 'wrote' in capsys.readouterr().out


def test_the_console_names_the_stale_temporaries_build_lmdb_removed(manifest, tmp_path):
    init_default_scope('mmpretrain')
    out = tmp_path / 'train'
    stale = [tmp_path / f'.train.{dead_pid()}.0badc0de', tmp_path / f'.train.{dead_pid()}.f.old']
    for folder in stale:
        (folder / 'imgs').mkdir(parents=True)
        (folder / 'imgs' / 'data.mdb').write_bytes(b'half')
    # Another destination's temporaries and a running writer's are not touched.
    kept = [tmp_path / f'.training.{dead_pid()}.0badc0de', tmp_path / f'.train.{os.getpid()}.x']
    for folder in kept:
        folder.mkdir()
    build = subprocess.run([sys.executable, str(ROOT / 'tools/data/build_lmdb.py'),
                            str(manifest), str(out)], env=ENV, capture_output=True, text=True,
                           timeout=300)
    assert build.returncode == 0, build.stderr[-3000:]
    assert sorted(tmp_path.iterdir()) == sorted([out, *kept])
    output = build.stdout + build.stderr
    assert 'removed 2 stale temporary folder(s) of a killed run' in output
    assert all(str(folder) in output for folder in stale)
    assert f'wrote {NUM_PAIRS} pairs and {NUM_PAIRS} images' in output
    assert len(ImageReportLMDBDataset(str(out), label_cache=False)) == NUM_PAIRS


def test_a_record_without_image_is_named_and_nothing_written(tmp_path):
    source = tmp_path / 'in.jsonl'
    source.write_text(json.dumps(dict(image='a.png', report=REPORT)) + '\n'
                      + json.dumps(dict(report=REPORT), ensure_ascii=False) + '\n',
                      encoding='utf-8')
    target = tmp_path / 'out.jsonl'
    with pytest.raises(SystemExit) as label_exit:
        load_module(ROOT / 'tools/data/label_reports.py', 'label_reports').main(
            [str(source), str(target)])
    with pytest.raises(SystemExit) as build_exit:
        BUILD_LMDB.main([str(source), str(tmp_path / 'lmdb')])
    for exit_info in (label_exit, build_exit):
        assert f"{source}:2: field 'image' is missing" in str(exit_info.value)
    assert sorted(path.name for path in tmp_path.iterdir()) == ['in.jsonl']


@pytest.fixture
def folder_with_corrupt_images(tmp_path) -> tuple:
    """A folder of three good images and two corrupt ones: (folder, good, corrupt)."""
    folder = tmp_path / 'photos'
    folder.mkdir()
    rng = np.random.default_rng(1)
    good = []
    for index in (0, 2, 4):
        good.append(folder / f'photo_{index}.png')
        Image.fromarray(rng.integers(0, 256, (40, 36, 3), dtype=np.uint8)).save(good[-1])
    corrupt = [folder / 'photo_1.jpg', folder / 'photo_3.png']
    corrupt[0].write_bytes(b'not an image at all')
    corrupt[1].write_bytes(good[0].read_bytes()[:60])  # truncated
    return folder, [str(path) for path in good], [str(path) for path in corrupt]


def test_zero_shot_scores_the_readable_images(tmp_path, capsys, tiny_config, tiny_checkpoint,
                                              tiny_model, folder_with_corrupt_images):
    folder, good, corrupt = folder_with_corrupt_images
    classes = ['normal', 'glaucoma', 'drusen']
    inferencer = ZeroShotInferencer(tiny_model, class_names=classes)
    with pytest.raises(UnreadableImageError, match=f'{corrupt[0]}: not a readable image'):
        inferencer(folder)
    failed = []
    results = inferencer(folder, batch_size=2, failed=failed)
    expected = np.stack([result['pred_scores'] for result in inferencer(good)])
    assert [result['img_path'] for result in results] == good
    assert [name for name, _ in failed] == corrupt
    np.testing.assert_allclose([result['pred_scores'] for result in results], expected,
                               atol=1e-6)

    out = tmp_path / 'scores.json'
    tool = load_module(ROOT / 'tools/zero_shot.py', 'zero_shot_tool')
    assert tool.main([tiny_config, str(tiny_checkpoint), str(folder), '--classes', *classes,
                      '--out', str(out), '--show-dir', str(tmp_path / 'vis')]) == 1
    saved = json.loads(out.read_text(encoding='utf-8'))
    assert [item['file'] for item in saved['images']] == good
    assert [item['file'] for item in saved['failed']] == corrupt
    scores = np.array([[item['scores'][c] for c in classes] for item in saved['images']])
    np.testing.assert_allclose(scores, expected, atol=1e-5)
    assert sorted(path.name for path in (tmp_path / 'vis').iterdir()) == [
        f'{Path(name).stem}.png' for name in good]
    printed = capsys.readouterr()
    for name in corrupt:
        assert f'error: {name}: not a readable image' in printed.err
    assert 'error: 2 of 5 images could not be read' in printed.err
    assert all(f'{name}  [' in printed.out for name in good)


def test_extract_features_writes_the_readable_images(tmp_path, capsys, tiny_config,
                                                     tiny_checkpoint, tiny_model,
                                                     folder_with_corrupt_images):
    folder, good, corrupt = folder_with_corrupt_images
    extractor = ViLReFFeatureExtractor(tiny_model)
    with pytest.raises(UnreadableImageError, match=f'{corrupt[0]}: not a readable image'):
        extractor(folder)
    failed = []
    features = torch.stack(extractor(folder, batch_size=2, failed=failed)).numpy()
    np.testing.assert_allclose(features, torch.stack(extractor(good)).numpy(), atol=1e-6)
    assert [name for name, _ in failed] == corrupt

    out = tmp_path / 'features.npy'
    tool = load_module(ROOT / 'tools/extract_features.py', 'extract_features_tool')
    assert tool.main([tiny_config, str(tiny_checkpoint), str(folder), '--out', str(out),
                      '--no-progress']) == 1
    np.testing.assert_allclose(np.load(out), features, atol=1e-5)
    assert out.with_suffix('.txt').read_text().splitlines() == good
    assert sorted(path.name for path in tmp_path.iterdir()) == [
        'features.npy', 'features.txt', 'photos']  # no temporaries left
    printed = capsys.readouterr()
    for name in corrupt:
        assert f'error: {name}: not a readable image' in printed.err
    assert 'error: 2 of 5 images could not be read' in printed.err

    # No readable image: every one is named, nothing is written.
    empty = tmp_path / 'empty.npy'
    assert tool.main([tiny_config, str(tiny_checkpoint), *corrupt, '--out', str(empty)]) == 1
    printed = capsys.readouterr().err
    assert all(f'error: {name}: not a readable image' in printed for name in corrupt)
    assert 'none of the 2 images could be read' in printed and not empty.exists()
