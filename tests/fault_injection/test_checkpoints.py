"""Fault injection for checkpoints: pickle payloads, corrupt and truncated files, and weights
that do not fit, through every entry point that reads a checkpoint (docs/security.md)."""
import itertools
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from mmengine.runner.checkpoint import CheckpointLoader
from PIL import Image

from vilref_mm.apis import init_model
from vilref_mm.apis.segmentation import read_backbone_state_dict
from vilref_mm.models.convert import CheckpointConversionError, convert_checkpoint
from vilref_mm.utils.checkpoint import (CorruptCheckpointError, IncompleteWeightsError,
                                        UntrustedCheckpointError, checkpoint_rule,
                                        load_checkpoint_file, trusted_checkpoints)
from tool_modules import load_module

REPO = Path(__file__).resolve().parents[2]
CLASSIFIER = REPO / 'tests' / 'data' / 'configs' / 'tiny_classifier.py'
TINY_VILREF = REPO / 'tests' / 'data' / 'configs' / 'tiny_vilref.py'
UNTRUSTED = 'needs Python objects besides tensors to be read'
CORRUPT = 'truncated, corrupt'
RUN_NUMBERS = itertools.count()


class Payload:
    """Unpickling it creates the folder ``marker``: proof that a file's code ran."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return os.mkdir, (self.marker, )


def run_test_tool(monkeypatch, *args) -> int:
    """tools/test.py in this process (it reads sys.argv)."""
    monkeypatch.setattr(sys, 'argv', ['test.py', *map(str, args)])
    return load_module('tools/test.py', 'tool_test').main()


@pytest.fixture(scope='module')
def trained(tmp_path_factory, folder_dataset) -> Path:
    """The work dir of a 2-iteration tiny classifier training (tools/train.py)."""
    work_dir = tmp_path_factory.mktemp('trained')
    env = {**os.environ, 'PYTHONPATH': f'{REPO}{os.pathsep}{os.environ.get("PYTHONPATH", "")}',
           'OMP_NUM_THREADS': '1'}
    proc = subprocess.run(
        [sys.executable, 'tools/train.py', str(CLASSIFIER), '--work-dir', str(work_dir),
         '--cfg-options', 'train_cfg.max_iters=2', 'train_cfg.val_interval=100',
         *classifier_data(folder_dataset)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    return work_dir


def classifier_data(root: Path) -> list:
    """--cfg-options of the tiny classifier: the data, and an experiment name of its own (the
    runners of one second would share one logger)."""
    return [f'{split}_dataloader.dataset.data_root={root}' for split in ('train', 'val', 'test')
            ] + [f'experiment_name=run_{next(RUN_NUMBERS)}']


@pytest.fixture(scope='module')
def classifier_weights(trained) -> dict:
    return load_checkpoint_file(str(trained / 'iter_2.pth'))['state_dict']


@pytest.fixture
def payload_file(tmp_path, classifier_weights):
    """A checkpoint with the trained weights and a payload; and its marker."""
    marker = tmp_path / 'code_ran'
    path = tmp_path / 'downloaded.pth'
    torch.save({'state_dict': classifier_weights, 'meta': Payload(marker)}, path)
    return path, marker


@pytest.fixture(scope='module')
def vilref_files(tmp_path_factory):
    """A tiny random ViLReF: its complete weights, the same without the image tower, and a
    ModifiedResNet image tower's weights under the ViT config's names."""
    folder = tmp_path_factory.mktemp('vilref_weights')
    torch.manual_seed(0)
    state = init_model(str(TINY_VILREF)).state_dict()
    files = dict(complete=folder / 'complete.pth', no_image=folder / 'no_image.pth',
                 rn=folder / 'rn.pth', empty=folder / 'empty.pth')
    torch.save({'state_dict': state}, files['complete'])
    torch.save({'state_dict': {k: v for k, v in state.items()
                               if not k.startswith('image_encoder.')}}, files['no_image'])
    rn = init_model(str(TINY_VILREF), cfg_options={'model.image_encoder': dict(
        _delete_=True, type='ViLReFModifiedResNet', stage_blocks=(1, 1, 1, 1),
        base_channels=8, num_heads=2, output_dim=16, img_size=32),
        'model.image_projection': False}).state_dict()
    torch.save({'state_dict': rn}, files['rn'])
    torch.save({'state_dict': {}}, files['empty'])
    return files


def corrupt_files(folder: Path, complete: Path) -> dict:
    """Random bytes, a truncated checkpoint, a text file and an empty file."""
    data = complete.read_bytes()
    files = {'random': np.random.default_rng(0).bytes(4096), 'truncated': data[:len(data) // 2],
             'text': '这不是检查点\n'.encode(), 'empty': b''}
    paths = {}
    for name, content in files.items():
        paths[name] = folder / f'{name}.pth'
        paths[name].write_bytes(content)
    return paths


# A pickle payload is refused by every entry point, and runs only when trusted.

def test_payload_refused_by_the_loaders(payload_file, classifier_weights, tmp_path):
    path, marker = payload_file
    with pytest.raises(UntrustedCheckpointError, match=rf'downloaded.pth {UNTRUSTED} \(posix'):
        load_checkpoint_file(str(path))
    # MMEngine's loader where vilref_mm's runner, strategies and models read (load_from,
    # resume, init_cfg Pretrained)
    with checkpoint_rule(), pytest.raises(UntrustedCheckpointError):
        CheckpointLoader.load_checkpoint(str(path), map_location='cpu')
    with pytest.raises(CheckpointConversionError, match=UNTRUSTED):
        convert_checkpoint(str(path), str(tmp_path / 'converted.pth'))
    with pytest.raises(UntrustedCheckpointError):
        read_backbone_state_dict(str(path))
    with trusted_checkpoints(str(tmp_path / 'another.pth')):  # trust is per file
        with pytest.raises(UntrustedCheckpointError):
            load_checkpoint_file(str(path))
    assert not marker.exists()
    with trusted_checkpoints(str(path)):
        loaded = load_checkpoint_file(str(path))
    assert marker.is_dir()
    assert torch.equal(loaded['state_dict']['head.fc.weight'],
                       classifier_weights['head.fc.weight'])


def test_payload_refused_by_test_tool_unless_trusted(payload_file, folder_dataset, tmp_path,
                                                    monkeypatch, capsys):
    path, marker = payload_file
    out = tmp_path / 'metrics.json'
    common = [CLASSIFIER, path, '--work-dir', tmp_path / 'test', '--out', out,
              '--cfg-options', *classifier_data(folder_dataset)]
    assert run_test_tool(monkeypatch, *common) == 1
    error = capsys.readouterr().err
    assert UNTRUSTED in error and 'Traceback' not in error
    assert not marker.exists() and not out.exists()
    assert run_test_tool(monkeypatch, *common, '--trust-checkpoint') == 0
    assert marker.is_dir() and out.is_file()


def test_payload_refused_by_resume(payload_file, folder_dataset, tmp_path, monkeypatch, capsys):
    path, marker = payload_file
    monkeypatch.setattr(sys, 'argv', [
        'train.py', str(CLASSIFIER), '--work-dir', str(tmp_path / 'work'), '--resume',
        str(path), '--cfg-options', *classifier_data(folder_dataset)])
    assert load_module('tools/train.py', 'tool_train').main() == 1
    assert UNTRUSTED in capsys.readouterr().err
    assert not marker.exists()


def test_payload_refused_by_inference(vilref_files, tmp_path, capsys):
    marker = tmp_path / 'code_ran'
    path = tmp_path / 'release.pth'
    state = torch.load(vilref_files['complete'], weights_only=True)['state_dict']
    torch.save({'state_dict': state, 'info': Payload(marker)}, path)
    image = tmp_path / 'eye.png'
    Image.fromarray(np.zeros((40, 40, 3), np.uint8)).save(image)
    with pytest.raises(UntrustedCheckpointError):
        init_model(str(TINY_VILREF), str(path))
    for tool, extra in (('zero_shot.py', []), ('extract_features.py',
                                               ['--out', str(tmp_path / 'f.npy')])):
        tool_main = load_module(f'tools/{tool}').main
        assert tool_main([str(TINY_VILREF), str(path), str(image), *extra]) == 1
        assert UNTRUSTED in capsys.readouterr().err
    assert not marker.exists()
    model = init_model(str(TINY_VILREF), str(path), trusted=True)
    assert marker.is_dir()
    assert torch.equal(model.text_projection, state['text_projection'])


# Our own training checkpoints need no trust.

def test_own_training_checkpoints_load_tensors_only(trained, monkeypatch):
    calls = []
    real_load = torch.load

    def recording_load(*args, **kwargs):
        calls.append(kwargs.get('weights_only'))
        return real_load(*args, **kwargs)

    monkeypatch.setattr(torch, 'load', recording_load)
    checkpoint = load_checkpoint_file(str(trained / 'iter_2.pth'))
    assert calls == [True]
    assert checkpoint['meta']['iter'] == 2
    assert len(checkpoint['message_hub']['log_scalars']['train/loss'].data[0]) == 2
    assert set(checkpoint) >= {'optimizer', 'state_dict'}


# Corrupt, truncated and random files: a clear error, never advice to trust them.

def test_corrupt_files_get_clear_errors(tmp_path, vilref_files, capsys):
    image = tmp_path / 'eye.png'
    Image.fromarray(np.zeros((40, 40, 3), np.uint8)).save(image)
    for name, path in corrupt_files(tmp_path, vilref_files['complete']).items():
        with pytest.raises(CorruptCheckpointError, match=CORRUPT) as error:
            load_checkpoint_file(str(path))
        assert f'{name}.pth' in str(error.value) and 'trust' not in str(error.value)
        with pytest.raises(CheckpointConversionError, match=CORRUPT):
            convert_checkpoint(str(path), str(tmp_path / 'converted.pth'))
        zero_shot = load_module('tools/zero_shot.py').main
        assert zero_shot([str(TINY_VILREF), str(path), str(image)]) == 1
        message = capsys.readouterr().err
        assert CORRUPT in message and 'trust' not in message, message
    broken = tmp_path / 'broken.safetensors'
    broken.write_bytes(b'\x08\x00\x00\x00\x00\x00\x00\x00{"a": 1}')
    with pytest.raises(CorruptCheckpointError, match='broken.safetensors'):
        load_checkpoint_file(str(broken))


def test_test_tool_on_corrupt_files(tmp_path, trained, folder_dataset, monkeypatch, capsys):
    for name, path in corrupt_files(tmp_path, trained / 'iter_2.pth').items():
        assert run_test_tool(monkeypatch, CLASSIFIER, path, '--work-dir', tmp_path / name,
                             '--cfg-options', *classifier_data(folder_dataset)) == 1
        message = capsys.readouterr().err
        assert f'error: {path} is not a readable checkpoint' in message, message
        assert 'Traceback' not in message


# Wrong weights give an error, not the numbers of a random model.

def test_test_tool_refuses_incomplete_weights(tmp_path, classifier_weights, folder_dataset,
                                              monkeypatch, capsys):
    cases = {
        'empty': ({}, 'weights: backbone.conv1.weight, backbone.bn1.* (4), '
                      'backbone.layer1.* (20), head.fc.* (2);'),
        'no_backbone': ({k: v for k, v in classifier_weights.items()
                         if not k.startswith('backbone.')}, 'backbone.layer1.* ('),
        'three_classes': ({**classifier_weights, 'head.fc.weight': torch.zeros(3, 8),
                           'head.fc.bias': torch.zeros(3)}, 'size mismatch for head.fc.weight'),
    }
    for name, (state, expected) in cases.items():
        path = tmp_path / f'{name}.pth'
        torch.save({'state_dict': state}, path)
        out = tmp_path / f'{name}.json'
        assert run_test_tool(monkeypatch, CLASSIFIER, path, '--work-dir', tmp_path / name,
                             '--out', out, '--cfg-options',
                             *classifier_data(folder_dataset)) == 1
        message = capsys.readouterr().err
        assert expected in message, message
        assert not out.exists()
    complete = tmp_path / 'complete.pth'
    torch.save({'state_dict': classifier_weights}, complete)
    assert run_test_tool(monkeypatch, CLASSIFIER, complete, '--work-dir', tmp_path / 'ok',
                         '--out', tmp_path / 'ok.json', '--cfg-options',
                         *classifier_data(folder_dataset)) == 0


def test_inference_refuses_incomplete_weights(vilref_files):
    model = init_model(str(TINY_VILREF), str(vilref_files['complete']))
    assert model.memory_queue is not None  # momentum towers rebuilt, not missing
    for name, expected in (('empty', 'lacks'), ('no_image', 'image_encoder.'),
                           ('rn', 'image_encoder.')):
        with pytest.raises(IncompleteWeightsError, match=expected) as error:
            init_model(str(TINY_VILREF), str(vilref_files[name]))
        assert f'{name}.pth' in str(error.value)
