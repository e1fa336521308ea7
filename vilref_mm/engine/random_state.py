"""The global random number generators' states, to checkpoint and restore.

MMEngine seeds the generators at start-up (``randomness``) and checkpoints the seed only: a
resumed run draws dropout, FLIP masks and augmentation of the main process from the seed's
initial state again. :class:`~vilref_mm.engine.ViLReFRunner` stores every rank's state
(:func:`get_random_state`) in each checkpoint and restores it on resume
(:func:`set_random_state`).
"""
import random
from typing import Any, Dict

import numpy as np
import torch


def get_random_state() -> Dict[str, Any]:
    """The states of Python's ``random``, NumPy's global generator, torch's CPU generator
    and, when CUDA is available, torch's generator of every visible GPU.

    Returns:
        dict: ``python``, ``numpy``, ``torch`` and (with CUDA) ``cuda`` (a list by device),
        made of tuples, numbers, NumPy arrays and CPU tensors (what a tensors-only checkpoint
        reader accepts).
    """
    state = dict(python=random.getstate(), numpy=np.random.get_state(),
                 torch=torch.get_rng_state())
    if torch.cuda.is_available():
        state['cuda'] = torch.cuda.get_rng_state_all()
    return state


def set_random_state(state: Dict[str, Any]) -> None:
    """Restore the generators from :func:`get_random_state`'s result (tensors on any device).

    The CUDA states are restored for the devices both the state and this process have.

    Args:
        state (dict): A state from :func:`get_random_state`.
    """
    random.setstate(state['python'])
    np.random.set_state(state['numpy'])
    torch.set_rng_state(state['torch'].cpu())
    if 'cuda' in state and torch.cuda.is_available():
        for device, device_state in zip(range(torch.cuda.device_count()), state['cuda']):
            torch.cuda.set_rng_state(device_state.cpu(), device)
