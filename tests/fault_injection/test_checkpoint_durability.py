"""Durable checkpoints: SIGKILL during checkpoint writes, again and again, always leaves a
complete checkpoint that ``--resume`` continues from; the resume fallback; the runner's hook
and batch checks."""
import os
import random
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from mmengine.config import Config
from mmengine.hooks import CheckpointHook

from vilref_mm.engine import build_runner
from vilref_mm.engine.hooks import DurableCheckpointHook
from vilref_mm.engine.runner import find_resume_checkpoint
from vilref_mm.utils.checkpoint import checkpoint_is_complete
from tool_modules import load_module

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / 'tests' / 'data' / 'configs' / 'tiny_classifier.py'
KILLS = 6


def train_command(work_dir: Path, data_root: Path, max_iters: int) -> list:
    """Resume (or start) a classifier with a 20 MB checkpoint every iteration, one kept."""
    return [
        sys.executable, 'tools/train.py', str(CONFIG), '--work-dir', str(work_dir), '--resume',
        '--cfg-options', f'train_cfg.max_iters={max_iters}', 'train_cfg.val_interval=100000',
        'default_hooks.checkpoint.interval=1', 'default_hooks.checkpoint.max_keep_ckpts=1',
        'model.backbone.base_channels=256', 'model.head.in_channels=256',
        *[f'{split}_dataloader.dataset.data_root={data_root}'
          for split in ('train', 'val', 'test')]]


def temporaries(work_dir: Path) -> list:
    return [path.name for path in work_dir.glob('.*') if path.name != '.' and path.is_file()]


def test_kills_during_checkpoint_writes_always_resume(tmp_path, folder_dataset):
    work_dir = tmp_path / 'work'
    env = {**os.environ, 'PYTHONPATH': f'{REPO}{os.pathsep}{os.environ.get("PYTHONPATH", "")}',
           'OMP_NUM_THREADS': '1'}
    rng = random.Random(0)
    resumed_from, killed_while_writing = [], 0
    for _ in range(KILLS):
        stale = set(temporaries(work_dir))  # what earlier kills left; the next save cleans it

        def writing() -> bool:
            return any(name.startswith('.checkpoint.') and name not in stale
                       for name in temporaries(work_dir))

        log = (tmp_path / 'log.txt').open('w')
        proc = subprocess.Popen(train_command(work_dir, folder_dataset, 100000), cwd=REPO,
                                env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            # Wait for the second save of this run, then kill a random moment into it:
            # writing, renaming, pointing last_checkpoint, removing the old checkpoint.
            saves_seen = 0
            deadline = time.monotonic() + 300
            while time.monotonic() < deadline and proc.poll() is None and saves_seen < 2:
                if writing():
                    saves_seen += 1
                    while saves_seen < 2 and writing():
                        time.sleep(0.0005)
                time.sleep(0.0005)
            assert proc.poll() is None, (tmp_path / 'log.txt').read_text()[-3000:]
            assert saves_seen == 2, 'no checkpoint save seen in 300 s'
            time.sleep(rng.choice([0.0, rng.uniform(0, 0.05)]))  # half at the write's start
            killed_while_writing += writing()
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
            log.close()
        chosen, reason = find_resume_checkpoint(str(work_dir))
        assert chosen is not None and checkpoint_is_complete(chosen), reason
        step = int(re.search(r'iter_(\d+)', chosen).group(1))
        assert not resumed_from or step >= resumed_from[-1]
        resumed_from.append(step)
    assert killed_while_writing >= 1, 'no kill landed while a checkpoint was being written'

    # The last run resumes, trains two more iterations and ends cleanly.
    final = resumed_from[-1] + 2
    proc = subprocess.run(train_command(work_dir, folder_dataset, final), cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=600)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-4000:]
    assert f'resumed epoch: 0, iter: {resumed_from[-1]}' in output
    assert (work_dir / 'last_checkpoint').read_text().endswith(f'iter_{final}.pth')
    assert sorted(path.name for path in work_dir.glob('*.pth')) == [f'iter_{final}.pth']
    assert temporaries(work_dir) == []


# Resuming after a crash: which checkpoint, and clear errors.

def write_checkpoint(path: Path, mtime: float, complete: bool = True) -> None:
    torch.save({'state_dict': {'w': torch.zeros(256)}}, path)
    if not complete:
        path.write_bytes(path.read_bytes()[:600])
    os.utime(path, (mtime, mtime))


@pytest.mark.parametrize('pointer', [None, '', 'iter_6.pth', 'iter_9.pth', 'iter_4.pth'])
def test_find_resume_checkpoint(tmp_path, pointer):
    """iter_6 truncated (killed mid-write by an older writer), iter_9 missing; iter_2 and iter_4
    complete. Only a pointer to a complete checkpoint is followed; else the newest one."""
    write_checkpoint(tmp_path / 'iter_2.pth', 1000)
    write_checkpoint(tmp_path / 'iter_4.pth', 2000)
    write_checkpoint(tmp_path / 'iter_6.pth', 3000, complete=False)
    if pointer is not None:
        (tmp_path / 'last_checkpoint').write_text(pointer and str(tmp_path / pointer))
    chosen, reason = find_resume_checkpoint(str(tmp_path))
    assert chosen == str(tmp_path / 'iter_4.pth')
    expected = {None: 'last_checkpoint does not exist', '': 'last_checkpoint is empty',
                'iter_6.pth': 'iter_6.pth, which is truncated or corrupt',
                'iter_9.pth': 'iter_9.pth, which is missing', 'iter_4.pth': 'named by'}[pointer]
    assert expected in reason


def test_find_resume_checkpoint_without_a_complete_one(tmp_path):
    write_checkpoint(tmp_path / 'iter_6.pth', 3000, complete=False)
    assert find_resume_checkpoint(str(tmp_path)) == (
        None, f'{tmp_path}/last_checkpoint does not exist, and {tmp_path} holds no complete '
        'checkpoint')


def test_resume_from_a_truncated_path_lists_the_complete_ones(tmp_path, folder_dataset,
                                                              monkeypatch, capsys):
    work_dir = tmp_path / 'work'
    work_dir.mkdir()
    write_checkpoint(work_dir / 'iter_2.pth', 1000)
    write_checkpoint(work_dir / 'iter_6.pth', 3000, complete=False)
    train_tool = load_module('tools/train.py', 'train_tool')
    monkeypatch.setattr(sys, 'argv', [
        'train.py', str(CONFIG), '--work-dir', str(work_dir), '--resume',
        str(work_dir / 'iter_6.pth'), '--cfg-options',
        *[f'{split}_dataloader.dataset.data_root={folder_dataset}'
          for split in ('train', 'val', 'test')]])
    assert train_tool.main() == 1
    error = capsys.readouterr().err
    assert f'iter_6.pth: the file is truncated or corrupt; complete checkpoints of {work_dir}: ' \
        f'{work_dir}/iter_2.pth' in error


# The runner's other guarantees.

def classifier_runner(tmp_path, folder_dataset, **options):
    cfg = Config.fromfile(CONFIG)
    cfg.work_dir = str(tmp_path / 'work')
    cfg.experiment_name = tmp_path.name
    for split in ('train', 'val', 'test'):
        cfg[f'{split}_dataloader'].dataset.data_root = str(folder_dataset)
    cfg.merge_from_dict(options)
    return build_runner(cfg)


def test_runner_saves_with_the_durable_hook(tmp_path, folder_dataset):
    runner = classifier_runner(tmp_path, folder_dataset)
    hooks = [hook for hook in runner.hooks if isinstance(hook, CheckpointHook)]
    assert [type(hook) for hook in hooks] == [DurableCheckpointHook]
    assert hooks[0].interval == 2 and not hooks[0].by_epoch  # the config's options kept


def test_a_batch_larger_than_the_training_set(tmp_path, folder_dataset):
    """Eight images: a batch of 16 with drop_last runs no iteration (an error); without
    drop_last every iteration sees the whole set (a warning)."""
    runner = classifier_runner(tmp_path / 'drop', folder_dataset, **{
        'train_dataloader.batch_size': 16, 'train_dataloader.drop_last': True})
    with pytest.raises(ValueError, match=r'has 8 samples, fewer than one batch \(16 per '
                       r'process x 1 processes\), and drop_last drops it'):
        runner.train()
    runner = classifier_runner(tmp_path / 'keep', folder_dataset, **{
        'train_dataloader.batch_size': 16, 'train_cfg.max_iters': 1})
    runner.train()
    log = next((tmp_path / 'keep' / 'work').glob('*/*.log')).read_text()
    assert 'the training set has 8 samples, fewer than one batch' in log
