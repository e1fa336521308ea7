"""Checkpoint reading under torch >= 2.6, and tensor-only checkpoints (``.pth`` or
``.safetensors``).

torch now unpickles with ``weights_only=True`` by default, which cannot read MMEngine's own
training checkpoints (they hold a message hub with Python objects). vilref_mm keeps the safe
default for every file from outside and trusts only the checkpoints the user's own training
wrote, i.e. what :class:`~vilref_mm.engine.ViLReFRunner` resumes or loads with ``load_from``.
"""
import contextlib
import contextvars
import os.path as osp
from typing import Iterator, Mapping, Optional, Union

import safetensors.torch
import torch
from mmengine.runner.checkpoint import CheckpointLoader

from .fileio import atomic_open

#: The file name ending that selects the safetensors format (else torch's).
SAFETENSORS_SUFFIX = '.safetensors'

_trusted = contextvars.ContextVar('vilref_trusted_checkpoint', default=False)


@contextlib.contextmanager
def trusted_checkpoints() -> Iterator[None]:
    """Let local checkpoints loaded inside this context unpickle Python objects.

    Use it only for checkpoints written by the user's own MMEngine training.
    """
    token = _trusted.set(True)
    try:
        yield
    finally:
        _trusted.reset(token)


def load_external_checkpoint(filename: str,
                             map_location: Union[str, torch.device, None] = 'cpu') -> dict:
    """Read a checkpoint from outside (released weights, converter input) safely.

    Args:
        filename (str): Path of the file: a torch checkpoint, or a ``.safetensors`` file.
        map_location (str | torch.device, optional): As in :func:`torch.load`.

    Returns:
        dict: What the file holds (tensors, numbers and strings only); a safetensors file
        gives ``{'state_dict': tensors}``, as :func:`save_tensor_checkpoint` writes ``.pth``.
    """
    filename = osp.expanduser(filename)
    if not osp.isfile(filename):
        raise FileNotFoundError(f'checkpoint {filename} does not exist')
    if filename.endswith(SAFETENSORS_SUFFIX):
        try:
            device = map_location if isinstance(map_location, (str, torch.device)) else 'cpu'
            tensors = safetensors.torch.load_file(filename, device=str(device))
        except Exception as err:  # the library raises its own and OS errors
            raise RuntimeError(f'cannot read safetensors checkpoint {filename}: {err}') from err
        return {'state_dict': tensors}
    try:
        return torch.load(filename, map_location=map_location, weights_only=True)
    except Exception as err:  # pickle errors come in many types
        raise RuntimeError(
            f'cannot read checkpoint {filename} with torch.load(weights_only=True): {err}. '
            'vilref_mm reads external checkpoints as tensors only; if this file is a '
            'training checkpoint you wrote yourself, resume from it or pass it as `load_from`.'
        ) from err


@CheckpointLoader.register_scheme(prefixes='', force=True)
def load_local_checkpoint(filename: str,
                          map_location: Optional[Union[str, torch.device]] = None) -> dict:
    """MMEngine's loader for local paths: always tensors only, except inside
    :func:`trusted_checkpoints` for a file that needs more (an MMEngine training checkpoint,
    with its message hub), which is then read with ``weights_only=False``."""
    if _trusted.get() and _holds_python_objects(osp.expanduser(filename)):
        return torch.load(osp.expanduser(filename), map_location=map_location,
                          weights_only=False)
    return load_external_checkpoint(filename, map_location)


def _holds_python_objects(filename: str) -> bool:
    """Whether a torch checkpoint needs globals ``weights_only=True`` refuses (read from its
    pickle, without loading tensors); False for safetensors and missing files."""
    if filename.endswith(SAFETENSORS_SUFFIX) or not osp.isfile(filename):
        return False
    try:
        return bool(torch.serialization.get_unsafe_globals_in_checkpoint(filename))
    except Exception:  # e.g. the legacy (pre-zip) format: leave it to the trusted read
        return True


def save_tensor_checkpoint(state_dict: Mapping[str, torch.Tensor], filename: str) -> None:
    """Write tensors as a checkpoint anyone can read safely, atomically (temporary file +
    rename; the folder is created if needed).

    A ``.safetensors`` name gives a safetensors file of the tensors, any other name
    ``torch.save({'state_dict': ...})``; both load with :func:`load_external_checkpoint`,
    ``init_cfg=dict(type='Pretrained')`` and ``load_from``.

    Args:
        state_dict (Mapping[str, torch.Tensor]): Tensors to save.
        filename (str): Destination.
    """
    with atomic_open(filename) as file:
        if filename.endswith(SAFETENSORS_SUFFIX):
            file.write(safetensors.torch.save(
                {name: tensor.contiguous() for name, tensor in state_dict.items()}))
        else:
            torch.save({'state_dict': dict(state_dict)}, file)
