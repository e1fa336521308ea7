"""The training tools on CPU: train, resume, test, and a 2-process gloo run."""
import json
import os
import socket
import subprocess
import sys
from pathlib import Path


from vilref_mm.utils.checkpoint import load_checkpoint_file

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / 'tests' / 'data' / 'configs' / 'tiny_classifier.py'


def _env() -> dict:
    env = dict(os.environ)
    env['PYTHONPATH'] = f'{REPO}{os.pathsep}{env.get("PYTHONPATH", "")}'
    env.setdefault('OMP_NUM_THREADS', '1')
    return env


def _data_options(root: Path) -> list:
    return [f'{split}_dataloader.dataset.data_root={root}' for split in ('train', 'val', 'test')]


def _run(args: list, cwd: Path) -> str:
    proc = subprocess.run(args, cwd=cwd, env=_env(), capture_output=True, text=True,
                          timeout=600)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-4000:]
    return output


def _scalars(work_dir: Path) -> list:
    """The per-iteration training records MMEngine logged to scalars.json."""
    files = sorted(work_dir.glob('*/vis_data/scalars.json'))
    assert files, f'no scalars.json under {work_dir}'
    records = [json.loads(line) for f in files for line in f.read_text().splitlines()]
    return [r for r in records if 'loss' in r]


def test_train_resume_and_test(tmp_path, folder_dataset):
    work_dir = tmp_path / 'work'
    _run([sys.executable, 'tools/train.py', str(CONFIG), '--work-dir', str(work_dir),
          '--cfg-options', *_data_options(folder_dataset)], REPO)
    assert (work_dir / 'iter_4.pth').is_file()
    assert (work_dir / 'last_checkpoint').read_text().strip().endswith('iter_4.pth')
    assert [r['iter'] for r in _scalars(work_dir)] == [1, 2, 3, 4]

    # Resuming the same work dir continues from iteration 4, optimizer state included; the
    # checkpoints read tensors-only (MMEngine's message hub objects are allow-listed).
    output = _run([sys.executable, 'tools/train.py', str(CONFIG), '--work-dir',
                   str(work_dir), '--resume', '--cfg-options', *_data_options(folder_dataset),
                   'train_cfg.max_iters=6'], REPO)
    assert 'resumed epoch: 0, iter: 4' in output
    checkpoint = load_checkpoint_file(str(work_dir / 'iter_6.pth'))
    assert checkpoint['meta']['iter'] == 6
    assert 'optimizer' in checkpoint

    out = tmp_path / 'metrics.json'
    _run([sys.executable, 'tools/test.py', str(CONFIG), str(work_dir / 'iter_6.pth'),
          '--work-dir', str(tmp_path / 'test'), '--out', str(out),
          '--cfg-options', *_data_options(folder_dataset)], REPO)
    metrics = json.loads(out.read_text())
    assert 0.0 <= metrics['accuracy/top1'] <= 100.0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def test_dist_train_two_cpu_processes(tmp_path, folder_dataset):
    """`tools/dist_train.sh CONFIG 2` runs with gloo on a machine without CUDA."""
    work_dir = tmp_path / 'dist'
    env_port = _free_port()
    proc = subprocess.run(
        ['bash', 'tools/dist_train.sh', str(CONFIG), '2', '--work-dir', str(work_dir),
         '--cfg-options', *_data_options(folder_dataset)],
        cwd=REPO, env={**_env(), 'PORT': str(env_port)}, capture_output=True, text=True,
        timeout=600)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-4000:]
    assert 'Distributed training: True' in output and 'GPU number: 2' in output
    assert (work_dir / 'iter_4.pth').is_file()
    assert [r['iter'] for r in _scalars(work_dir)] == [1, 2, 3, 4]
