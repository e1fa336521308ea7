"""The global random number generators' states, to checkpoint and restore.

MMEngine seeds the generators at start-up (``randomness``) and checkpoints the seed only: a
resumed run draws dropout, FLIP masks and augmentation of the main process from the seed's
initial state again. :class:`~vilref_mm.engine.ViLReFRunner` and
:class:`~vilref_mm.engine.ViLReFFlexibleRunner` store every rank's state
(:func:`get_random_state`) in each checkpoint, and restore it on resume
(:func:`restore_rank_random_state`).
"""
import logging
import random
from typing import Any, Dict, List, Optional

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


def restore_rank_random_state(states: Optional[List[Dict[str, Any]]], rank: int,
                              world_size: int, filename: str,
                              logger: logging.Logger) -> None:
    """Restore this rank's generators from a checkpoint's ``meta['random_states']`` (a list
    by rank of :func:`get_random_state` results).

    A checkpoint without random states (an older one), or saved by another number of ranks,
    leaves the generators seeded as at start-up, with a warning.

    Args:
        states (list[dict] | None): The checkpoint's random states.
        rank (int): This process's rank.
        world_size (int): The number of processes of this run.
        filename (str): The checkpoint, for the warnings.
        logger (logging.Logger): Where to warn.
    """
    if states is None:
        logger.warning(f'{filename} holds no random states: the random streams '
                       '(dropout, masks, augmentation) restart from the seed')
    elif len(states) != world_size:
        logger.warning(f'{filename} was saved by {len(states)} processes, this run has '
                       f'{world_size}: the random streams restart from the seed')
    else:
        set_random_state(states[rank])
