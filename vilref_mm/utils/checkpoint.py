"""Reading checkpoints under one trust rule, and writing tensor-only checkpoints.

The rule (docs/security.md):

- every file is read tensors-only: ``torch.load(weights_only=True)``, or safetensors. The
  objects of MMEngine's own training checkpoints (the message hub's :class:`HistoryBuffer`,
  numpy arrays and scalars) are allow-listed, so resuming and evaluating one's own training
  needs no trust;
- a file that needs any other Python object is unpickled only when the user marked it
  trusted (:func:`trusted_checkpoints`, ``--trust-checkpoint`` on the command line);
  otherwise the error names the objects it would have built.

Unreadable files (corrupt, truncated, not a checkpoint) get an error that says so, never
advice to trust them.

Where it applies: vilref_mm's converter, inference API and tools read with
:func:`load_checkpoint_file`. MMEngine's ``CheckpointLoader`` follows the rule only inside
:func:`checkpoint_rule`, which ``ViLReFRunner`` (``load_from``, ``--resume``, ``init_cfg``),
the strategies of :mod:`vilref_mm.engine.strategies` and the ``init_weights`` of vilref_mm's
models (:class:`CheckpointRuleInitMixin`) open while they read; for everything else in the
process, importing vilref_mm leaves MMEngine's loader as it is.
"""
import contextlib
import contextvars
import json
import os.path as osp
import pickle
import re
import struct
import threading
import zipfile
from typing import Callable, Dict, Iterator, List, Mapping, Optional, Sequence, Union

import numpy as np
import safetensors.torch
import torch
from mmengine.logging import HistoryBuffer
from mmengine.runner.checkpoint import CheckpointLoader
from torch import nn

from .fileio import atomic_open

#: The file name ending that selects the safetensors format (else torch's).
SAFETENSORS_SUFFIX = '.safetensors'

MapLocation = Union[str, torch.device, Callable, None]

_trusted_paths: contextvars.ContextVar = contextvars.ContextVar('vilref_trusted_paths',
                                                                default=())


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be used; the message names the file and says what to do."""


class CorruptCheckpointError(CheckpointError):
    """The file is not a readable checkpoint (truncated, corrupt, another format)."""


class UntrustedCheckpointError(CheckpointError):
    """The file needs Python objects beyond tensors and the user did not mark it trusted."""


class IncompleteWeightsError(CheckpointError):
    """A checkpoint leaves weights of the model missing or of another shape."""


def _history_buffer_method(owner: type, name: str) -> Callable:
    """What ``getattr`` may do while a checkpoint is read: fetch a statistics method of
    :class:`HistoryBuffer` (its pickle names them with ``getattr``), and nothing else."""
    if owner is HistoryBuffer and callable(getattr(HistoryBuffer, name, None)) and \
            not name.startswith('_'):
        return getattr(HistoryBuffer, name)
    raise pickle.UnpicklingError(f'refused getattr({owner!r}, {name!r}): a checkpoint may '
                                 'only name the statistics methods of HistoryBuffer')


def training_checkpoint_globals() -> list:
    """The Python objects MMEngine training checkpoints hold besides what torch's tensors-only
    reader allows: the message hub's :class:`HistoryBuffer` (with its statistics methods,
    through a ``getattr`` restricted to them), numpy arrays, scalars and dtypes. None of them
    runs code when it is rebuilt."""
    multiarray = (np._core if hasattr(np, '_core') else np.core).multiarray  # numpy 2 or 1
    return [HistoryBuffer, (_history_buffer_method, 'builtins.getattr'), np.ndarray, np.dtype,
            multiarray._reconstruct, multiarray.scalar,
            *(type(np.dtype(code)) for code in '?bBhHiIlLqQefdgFDGSU')]


@contextlib.contextmanager
def trusted_checkpoints(*paths: str) -> Iterator[None]:
    """Mark files (or every file under folders) as trusted inside this block: they may be
    unpickled in full if they need more than :func:`training_checkpoint_globals`.

    Use it only for files whose origin the user vouches for (``--trust-checkpoint``):
    unpickling runs whatever code a file names.

    Args:
        *paths (str): Checkpoint files or folders.
    """
    token = _trusted_paths.set(_trusted_paths.get() + tuple(
        osp.realpath(osp.expanduser(path)) for path in paths))
    try:
        yield
    finally:
        _trusted_paths.reset(token)


def is_trusted(filename: str) -> bool:
    """Whether ``filename`` is, or lies under, a path of :func:`trusted_checkpoints`."""
    real = osp.realpath(osp.expanduser(filename))
    return any(real == path or real.startswith(path.rstrip(osp.sep) + osp.sep)
               for path in _trusted_paths.get())


def load_checkpoint_file(filename: str, map_location: MapLocation = 'cpu') -> dict:
    """Read a local checkpoint under the trust rule of this module.

    Args:
        filename (str): A torch checkpoint (``.pth`` and others) or a ``.safetensors`` file.
        map_location (str | torch.device | callable, optional): As in :func:`torch.load`.

    Returns:
        dict: What the file holds; a safetensors file gives ``{'state_dict': tensors}``, as
        :func:`save_tensor_checkpoint` writes ``.pth``.

    Raises:
        FileNotFoundError: No such file.
        CorruptCheckpointError: Not a readable checkpoint.
        UntrustedCheckpointError: It needs other Python objects and is not trusted.
    """
    path = osp.expanduser(filename)
    if not osp.isfile(path):
        raise FileNotFoundError(f'checkpoint {filename} does not exist')
    if path.endswith(SAFETENSORS_SUFFIX):
        device = map_location if isinstance(map_location, (str, torch.device)) else 'cpu'
        try:
            return {'state_dict': safetensors.torch.load_file(path, device=str(device))}
        except Exception as error:  # the library raises its own and OS errors
            raise CorruptCheckpointError(
                f'{filename} is not a readable safetensors file (truncated or corrupt: '
                f'{_first_line(error)}); download or write it again') from error
    try:
        with torch.serialization.safe_globals(training_checkpoint_globals()):
            return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as error:  # pickle, zip and torch errors come in many types
        foreign = _foreign_globals(path, error)
        if not foreign:
            raise _corrupt(filename, error) from error
        if not is_trusted(path):
            raise UntrustedCheckpointError(
                f'{filename} needs Python objects besides tensors to be read '
                f'({", ".join(foreign[:6])}{", ..." if len(foreign) > 6 else ""}); '
                'vilref_mm reads checkpoints tensors-only (torch.load(weights_only=True)), '
                'because unpickling these runs the code they name. Converted releases and '
                "vilref_mm's own training checkpoints need nothing more. Only if you know "
                'where this file comes from, pass --trust-checkpoint (API: trusted=True); '
                'see docs/security.md') from error
    try:
        return torch.load(path, map_location=map_location, weights_only=False)
    except Exception as error:
        raise _corrupt(filename, error) from error


def _first_line(error: BaseException) -> str:
    """The reader's own reason, without torch's advice to load with ``weights_only=False``."""
    text = str(error)
    match = re.search(r'WeightsUnpickler error:\s*(\S[^\n]*)', text)
    lines = text.strip().splitlines()
    return f'{type(error).__name__}: {match.group(1) if match else lines[0] if lines else ""}'


def _corrupt(filename: str, error: BaseException) -> CorruptCheckpointError:
    path = osp.expanduser(filename)
    with open(path, 'rb') as file:
        head = file.read(4)
    if not head:
        reason = 'the file is empty'
    elif head == b'PK\x03\x04' and not checkpoint_is_complete(path):
        reason = 'a torch zip archive that ends early'
    else:
        reason = _first_line(error)
    return CorruptCheckpointError(
        f'{filename} is not a readable checkpoint ({reason}): it is truncated, corrupt or not '
        'a torch / safetensors file; write or download it again')


def _foreign_globals(path: str, error: BaseException) -> List[str]:
    """The Python objects a torch checkpoint names beyond the allowed ones; [] when the file
    cannot be parsed (then it is corrupt, whatever it names)."""
    refused = re.findall(r'refused (getattr\(.*?\))', str(error))
    if refused:
        return refused
    if zipfile.is_zipfile(path):
        try:
            with torch.serialization.safe_globals(training_checkpoint_globals()):
                return list(torch.serialization.get_unsafe_globals_in_checkpoint(path))
        except Exception:  # unreadable pickle or archive
            return []
    # The legacy (pre-zip) format: the tensors-only reader names what it refused.
    return re.findall(r'GLOBAL ([\w.]+)', str(error))


def load_local_checkpoint(filename: str, map_location: MapLocation = None) -> dict:
    """MMEngine's loader for local paths inside :func:`checkpoint_rule`:
    :func:`load_checkpoint_file`."""
    return load_checkpoint_file(filename, map_location)


_rule_lock = threading.Lock()
_rule_depth = 0
_mmengine_local_loader: Optional[Callable] = None


@contextlib.contextmanager
def checkpoint_rule() -> Iterator[None]:
    """Inside this block MMEngine's ``CheckpointLoader`` (``load_from``, resume,
    ``init_cfg=dict(type='Pretrained')``, ``mmengine.runner.load_checkpoint``) reads local
    paths with :func:`load_checkpoint_file`; outside, with MMEngine's own loader.

    Blocks may nest and overlap across threads: MMEngine's loader comes back when the last
    one ends.
    """
    global _rule_depth, _mmengine_local_loader
    with _rule_lock:
        if _rule_depth == 0:
            _mmengine_local_loader = CheckpointLoader._schemes['']
            CheckpointLoader.register_scheme('', load_local_checkpoint, force=True)
        _rule_depth += 1
    try:
        yield
    finally:
        with _rule_lock:
            _rule_depth -= 1
            if _rule_depth == 0:
                CheckpointLoader.register_scheme('', _mmengine_local_loader, force=True)


class CheckpointRuleInitMixin:
    """For a :class:`~mmengine.model.BaseModule`: ``init_weights`` (``init_cfg=dict(
    type='Pretrained')`` of the module and its children) reads under :func:`checkpoint_rule`,
    whichever runner, strategy or script calls it."""

    def init_weights(self) -> None:
        with checkpoint_rule():
            super().init_weights()


def checkpoint_is_complete(filename: str) -> bool:
    """Whether a file is a complete torch (zip) or safetensors checkpoint, judged from its
    structure without reading the tensors (a truncated file has no zip directory, or fewer
    bytes than its safetensors header describes)."""
    if not osp.isfile(filename):
        return False
    try:
        if filename.endswith(SAFETENSORS_SUFFIX):
            with open(filename, 'rb') as file:
                (length,) = struct.unpack('<Q', file.read(8))
                header = json.loads(file.read(length))
            end = max((entry['data_offsets'][1] for name, entry in header.items()
                       if name != '__metadata__'), default=0)
            return osp.getsize(filename) >= 8 + length + end
        with zipfile.ZipFile(filename) as archive:
            return any(name.endswith('data.pkl') for name in archive.namelist())
    except (OSError, ValueError, KeyError, TypeError, struct.error, zipfile.BadZipFile):
        return False


def load_state_dict_completely(model: nn.Module, state_dict: Mapping[str, torch.Tensor],
                               source: str) -> List[str]:
    """Load ``state_dict`` into ``model``, requiring every weight of the model.

    The model's own load hooks run first (e.g. ViLReF rebuilds momentum towers a release
    lacks, RN50 resizes position embeddings), so only weights nothing provides count.

    Args:
        model (nn.Module): The model.
        state_dict (Mapping[str, Tensor]): The weights.
        source (str): The checkpoint file, for the messages.

    Returns:
        list[str]: Keys of ``state_dict`` the model does not have (ignored).

    Raises:
        IncompleteWeightsError: A weight of the model is missing or of another shape.
    """
    try:
        result = model.load_state_dict(state_dict, strict=False)
    except RuntimeError as error:  # torch reports shape mismatches even when not strict
        mismatches = re.findall(r'size mismatch for [^\n]+', str(error))
        raise IncompleteWeightsError(
            f'{source}: weights of another shape than the model\'s: '
            f'{"; ".join(mismatches[:5]) or error}{" ..." if len(mismatches) > 5 else ""}; '
            'the config does not describe this checkpoint (arch, embed dims, text encoder, '
            'number of classes)') from error
    if result.missing_keys:
        raise IncompleteWeightsError(
            f'{source}: lacks {len(result.missing_keys)} of the model\'s '
            f'{len(model.state_dict())} weights: {summarize_keys(result.missing_keys)}; the '
            'config does not describe this checkpoint (image tower arch, text encoder, heads), '
            'or the file is not a complete model')
    return list(result.unexpected_keys)


def summarize_keys(keys: Sequence[str], limit: int = 8) -> str:
    """Keys grouped by their first two name parts, with counts: ``image_encoder.layers.*
    (144), logit_scale``."""
    groups: Dict[str, List[str]] = {}
    for key in keys:
        parts = key.split('.')
        groups.setdefault('.'.join(parts[:2]) + '.*' if len(parts) > 2 else key, []).append(key)
    items = [members[0] if len(members) == 1 else f'{group} ({len(members)})'
             for group, members in groups.items()]
    return ', '.join(items[:limit]) + (f', ... ({len(items) - limit} more groups)'
                                       if len(items) > limit else '')


def save_tensor_checkpoint(state_dict: Mapping[str, torch.Tensor], filename: str) -> None:
    """Write tensors as a checkpoint anyone can read safely, atomically (temporary file +
    fsync + rename; the folder is created if needed).

    A ``.safetensors`` name gives a safetensors file of the tensors, any other name
    ``torch.save({'state_dict': ...})``; both load with :func:`load_checkpoint_file`,
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


def read_checkpoint_state_dict(filename: str) -> Mapping[str, torch.Tensor]:
    """The ``state_dict`` of a checkpoint file (or the file's dict itself when it has none),
    read by :func:`load_checkpoint_file` on the CPU."""
    content = load_checkpoint_file(filename, 'cpu')
    state_dict = content.get('state_dict', content) if isinstance(content, Mapping) else None
    if not isinstance(state_dict, Mapping):
        raise CorruptCheckpointError(f'{filename}: holds {type(content).__name__}, not a state '
                                     'dict (a dict of tensors, or a dict with `state_dict`)')
    return state_dict


__all__ = [
    'CheckpointError', 'CorruptCheckpointError', 'UntrustedCheckpointError',
    'IncompleteWeightsError', 'SAFETENSORS_SUFFIX', 'CheckpointRuleInitMixin',
    'checkpoint_is_complete', 'checkpoint_rule', 'is_trusted',
    'load_checkpoint_file', 'load_local_checkpoint', 'load_state_dict_completely',
    'read_checkpoint_state_dict', 'save_tensor_checkpoint', 'summarize_keys',
    'training_checkpoint_globals', 'trusted_checkpoints'
]
