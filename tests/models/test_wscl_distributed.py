"""The distributed contract of the contrastive losses: W ranks of batch B equal 1 rank of
W*B, in loss, gradients and logged values."""
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from mmengine.logging import MessageHub
from tool_modules import load_module

WORKER = Path(__file__).with_name('_wscl_dist_worker.py')
REPO_ROOT = Path(__file__).resolve().parents[2]
WORLD_SIZE = 2
TIMEOUT_S = 300


worker = load_module(WORKER)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


@pytest.fixture(scope='module')
def distributed_results(tmp_path_factory):
    """Run the worker as 2 gloo ranks once; rank 0's saved results."""
    out = tmp_path_factory.mktemp('wscl_ddp') / 'rank0.pt'
    port = free_port()
    env = dict(
        os.environ,
        PYTHONPATH=os.pathsep.join(
            filter(None, [str(REPO_ROOT),
                          os.environ.get('PYTHONPATH')])))
    ranks = [
        subprocess.Popen([
            sys.executable,
            str(WORKER), '--rank',
            str(rank), '--world-size',
            str(WORLD_SIZE), '--port',
            str(port), '--out',
            str(out)
        ],
                         env=env,
                         stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT,
                         text=True) for rank in range(WORLD_SIZE)
    ]
    try:
        outputs = [rank.communicate(timeout=TIMEOUT_S)[0] for rank in ranks]
    finally:
        for rank in ranks:
            if rank.poll() is None:
                rank.kill()
                rank.wait()
    for rank, output in zip(ranks, outputs):
        assert rank.returncode == 0, output[-4000:]
    return torch.load(out)


@pytest.mark.parametrize('with_queue', [False, True])
@pytest.mark.parametrize('name', list(worker.LOSSES))
def test_two_ranks_match_one_process(distributed_results, monkeypatch, name, with_queue):
    distributed = distributed_results[name, with_queue]
    # The iteration that the worker sets goes to a message hub of this test alone.
    hub = MessageHub('loss_contract')
    monkeypatch.setattr(MessageHub, 'get_current_instance', classmethod(lambda cls: hub))
    model, momentum_model, images, texts, labels, queue = worker.make_problem(with_queue)
    loss, grads, log_vars = worker.loss_and_grads(worker.LOSSES[name], model, momentum_model,
                                                  images, texts, labels, queue)

    # Each rank covers different anchors, so the ranks' losses differ.
    assert not torch.allclose(distributed['losses'][0],
                              distributed['losses'][1])
    torch.testing.assert_close(
        distributed['losses'].mean(), loss, rtol=1e-5, atol=0)
    assert distributed['grads'].keys() == grads.keys()
    for param, grad in grads.items():
        assert grad.abs().max() > 0, param
        torch.testing.assert_close(
            distributed['grads'][param],
            grad,
            rtol=1e-5,
            atol=1e-5 * float(grad.abs().max()),
            msg=lambda text, param=param: f'{param}: {text}')
    # The logged values averaged over the ranks (ViLReF.parse_losses) are the global
    # batch's.
    assert distributed['log_vars'].keys() == log_vars.keys()
    assert ('eliminated_queue' in log_vars) == with_queue
    for key, value in log_vars.items():
        torch.testing.assert_close(distributed['log_vars'][key].mean(), value.float(),
                                   rtol=1e-5, atol=1e-7,
                                   msg=lambda text, key=key: f'{key}: {text}')
