"""The runner vilref_mm's tools use (MMEngine's Runner with durable checkpoints, complete
weights for evaluation, and distributed runs on CPU) and its quiet console."""
import atexit
import contextlib
import gc
import glob
import logging
import os
import os.path as osp
import re
import secrets
from collections import OrderedDict
from datetime import timedelta
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple, Union

import torch
import torch.distributed as dist
from mmengine.config import Config
from mmengine.dist import all_gather_object, get_rank, is_distributed, is_main_process
from mmengine.fileio import LocalBackend, get_file_backend
from mmengine.hooks import CheckpointHook
from mmengine.logging import MMLogger
from mmengine.model import is_model_wrapper
from mmengine.registry import RUNNERS
from mmengine.runner import Runner
from mmengine.runner.checkpoint import _load_checkpoint
from torch import nn
from torch.utils.data import DataLoader

from vilref_mm.utils.checkpoint import (CorruptCheckpointError, checkpoint_is_complete,
                                        checkpoint_rule, load_state_dict_completely)
from vilref_mm.utils.distributed import batch_size_per_process
from vilref_mm.utils.fileio import remove_stale_temporaries, replace_durably, temporary_prefix
from .hooks import DurableCheckpointHook
from .random_state import get_random_state, restore_rank_random_state

#: Checkpoint files :func:`find_resume_checkpoint` considers in a work dir.
CHECKPOINT_NAME = re.compile(r'(?:epoch|iter)_\d+\.pth$')
#: The destination name of checkpoint temporaries (whatever the checkpoint's own name), so
#: that every save can remove what a killed save left.
CHECKPOINT_TEMPORARY = 'checkpoint'

#: The optimizer constructors' line per parameter (weight decay of each norm and bias, each
#: frozen parameter), which a quiet runner leaves off the console.
PARAMETER_MESSAGES = ('paramwise_options -- ', 'is skipped since its requires_grad=False')


class DropMessages(logging.Filter):
    """Drops log records whose message contains one of ``patterns``."""

    def __init__(self, patterns: Sequence[str]):
        super().__init__()
        self.patterns = tuple(patterns)

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not any(pattern in message for pattern in self.patterns)


def console_handlers(logger: logging.Logger) -> Iterator[logging.Handler]:
    """The handlers of a (MMEngine) logger that do not write to a file."""
    return (handler for handler in logger.handlers
            if not isinstance(handler, logging.FileHandler))


def drop_console_messages(logger: logging.Logger, patterns: Sequence[str]) -> None:
    """Leave the messages containing one of ``patterns`` off a logger's console (not its
    log file)."""
    for handler in console_handlers(logger):
        handler.addFilter(DropMessages(patterns))


def _warnings_only(record: logging.LogRecord) -> bool:
    return record.levelno >= logging.WARNING


def find_resume_checkpoint(work_dir: str) -> Tuple[Optional[str], str]:
    """The checkpoint ``--resume`` (auto) continues from.

    The one ``last_checkpoint`` names, if it is complete; else, when ``last_checkpoint`` is
    missing, empty or names a missing or truncated file (a crash during a save), the newest
    complete ``epoch_N.pth`` / ``iter_N.pth`` of the work dir (by modification time).

    Args:
        work_dir (str): The work dir.

    Returns:
        tuple[str | None, str]: The checkpoint (None: none complete) and why it was chosen.
    """
    pointer = osp.join(work_dir, 'last_checkpoint')
    named = None
    if not osp.isfile(pointer):
        reason = f'{pointer} does not exist'
    else:
        with open(pointer, encoding='utf-8') as file:
            named = file.read().strip()
        if not named:
            reason = f'{pointer} is empty'
        else:
            if not osp.isfile(named) and osp.isfile(osp.join(work_dir, osp.basename(named))):
                named = osp.join(work_dir, osp.basename(named))  # a work dir moved or renamed
            if checkpoint_is_complete(named):
                return named, f'named by {pointer}'
            reason = (f'{pointer} names {named}, which is '
                      f'{"truncated or corrupt" if osp.isfile(named) else "missing"}')
    candidates = sorted((path for path in glob.glob(osp.join(work_dir, '*.pth'))
                         if CHECKPOINT_NAME.match(osp.basename(path)) and path != named),
                        key=osp.getmtime, reverse=True)
    for path in candidates:
        if checkpoint_is_complete(path):
            return path, f'{reason}; the newest complete checkpoint of {work_dir}'
    return None, f'{reason}, and {work_dir} holds no complete checkpoint'


def _destroy_process_group() -> None:
    """Tear the default process group down while the interpreter is still whole.

    Left to interpreter shutdown, gloo's worker threads can be destroyed while joinable,
    which aborts the process ("terminate called without an active exception") after a
    successful run. The objects that keep a reference to the group (a DDP reducer, an FSDP
    device mesh) are collected first, so the group is destroyed here, not when the
    interpreter finally releases them.
    """
    if dist.is_initialized():
        gc.collect()
        dist.destroy_process_group()


def destroy_process_group_at_exit() -> None:
    """Register :func:`_destroy_process_group` at exit, once however many runners."""
    atexit.unregister(_destroy_process_group)
    atexit.register(_destroy_process_group)


def init_cpu_process_group(launcher: str, timeout: Optional[float] = None) -> None:
    """A gloo process group for a machine without CUDA, where MMEngine's own set-up calls
    ``torch.cuda``; the processes must come from torchrun (``--launcher pytorch``).

    Args:
        launcher: The runner's launcher.
        timeout: The collectives' timeout in seconds (None: torch's default).
    """
    if launcher != 'pytorch':
        raise RuntimeError(f'launcher {launcher!r} needs CUDA; on a CPU-only machine start '
                           'the processes with torchrun and --launcher pytorch')
    kwargs = {} if timeout is None else dict(timeout=timedelta(seconds=timeout))
    dist.init_process_group(backend='gloo', **kwargs)
    destroy_process_group_at_exit()


class ViLReFRunnerMixin:
    """What :class:`ViLReFRunner` and :class:`~vilref_mm.engine.ViLReFFlexibleRunner` add to
    MMEngine's runners:

    - every checkpoint is written atomically (temporary file, fsync, rename) and saved with
      :class:`~vilref_mm.engine.hooks.DurableCheckpointHook` in place of MMEngine's
      ``CheckpointHook``, so a crash at any moment leaves a complete checkpoint;
    - every checkpoint holds the generators' states of every rank (Python, NumPy, torch CPU
      and CUDA: :mod:`~vilref_mm.engine.random_state`), which resuming restores;
    - ``--resume`` continues from the newest complete checkpoint of the work dir when
      ``last_checkpoint`` is missing, empty or names a missing or truncated file, and says
      which it chose (:func:`find_resume_checkpoint`);
    - each dataloader gets its own ``torch.Generator`` (:meth:`build_dataloader`), so
      starting a dataloader's workers never draws from the global torch generator;
    - training stops before it starts when the training set does not fill one batch.
    """

    def register_default_hooks(self, hooks: Optional[Dict] = None) -> None:
        hooks = dict(hooks or {})
        checkpoint = hooks.get('checkpoint', dict(type='CheckpointHook', interval=1))
        kind = checkpoint.get('type') if isinstance(checkpoint, dict) else None
        if kind is CheckpointHook or str(kind).split('.')[-1] == 'CheckpointHook':
            hooks['checkpoint'] = {**checkpoint, 'type': DurableCheckpointHook}
        super().register_default_hooks(hooks)

    @staticmethod
    def build_dataloader(dataloader: Union[DataLoader, Dict], seed: Optional[int] = None,
                         diff_rank_seed: bool = False) -> DataLoader:
        """MMEngine's ``build_dataloader``; the dataloader gets its own ``torch.Generator``
        (seeded with ``seed``) unless it has one.

        PyTorch draws a base seed for the workers each time it starts them (every ``iter``
        of a loader without persistent workers, the first of one with them), by default from
        the global torch generator, which also draws the training's dropout and FLIP masks.
        A validation, or the start of a resumed run, would shift that stream. The base seed
        itself does not reach the workers' transforms: MMEngine's ``worker_init_fn``
        reseeds them.
        """
        dataloader = Runner.build_dataloader(dataloader, seed, diff_rank_seed)
        if isinstance(dataloader, DataLoader) and dataloader.generator is None:
            dataloader.generator = torch.Generator()
            if seed is not None:
                dataloader.generator.manual_seed(seed)
        return dataloader

    def build_train_loop(self, loop):
        loop = super().build_train_loop(loop)
        dataloader = loop.dataloader
        size = len(dataloader.dataset)
        batch = batch_size_per_process(dataloader)
        if len(dataloader) == 0:
            raise ValueError(
                f'train_dataloader: the training set has {size} samples, fewer than one batch '
                f'({batch} per process x {self.world_size} processes), and drop_last drops '
                'it: no iteration would run; lower train_dataloader.batch_size or add data')
        if batch is not None and size < batch * self.world_size:
            self.logger.warning(
                f'train_dataloader: the training set has {size} samples, fewer than one batch '
                f'({batch} per process x {self.world_size} processes): every iteration sees '
                'the whole set in a smaller batch')
        return loop

    def load_or_resume(self) -> None:
        if self._has_loaded or not self._resume:
            return super().load_or_resume()
        if self._load_from is None:
            chosen, reason = find_resume_checkpoint(self.work_dir)
            if chosen is None:
                self.logger.warning(f'--resume: {reason}; training starts from the beginning')
                self._resume = False
            else:
                self.logger.info(f'resuming from {chosen} ({reason})')
                self._load_from = chosen
        elif '://' not in self._load_from and not checkpoint_is_complete(self._load_from):
            complete = [path for path in sorted(glob.glob(osp.join(self.work_dir, '*.pth')))
                        if checkpoint_is_complete(path)]
            raise CorruptCheckpointError(
                f'--resume {self._load_from}: the file is '
                f'{"truncated or corrupt" if osp.isfile(self._load_from) else "missing"}; '
                + (f'complete checkpoints of {self.work_dir}: {", ".join(complete)} '
                   '(--resume without a path takes the newest)' if complete else
                   f'{self.work_dir} holds no complete checkpoint'))
        super().load_or_resume()

    def save_checkpoint(self, out_dir: str, filename: str, *args, **kwargs) -> None:
        """MMEngine's ``save_checkpoint``, with the random states of every rank in
        ``meta['random_states']`` (a list by rank), written to a temporary file in
        ``out_dir`` and renamed when complete (local folders; other backends as MMEngine
        writes them).

        Every rank must call it (as the checkpoint hooks do): it gathers the states.
        """
        kwargs['meta'] = dict(kwargs.get('meta') or {},
                              random_states=all_gather_object(get_random_state()))
        backend = get_file_backend(out_dir, backend_args=kwargs.get('backend_args'))
        if not is_main_process() or not isinstance(backend, LocalBackend):
            return super().save_checkpoint(out_dir, filename, *args, **kwargs)
        temporary = osp.join(out_dir, CHECKPOINT_TEMPORARY)
        remove_stale_temporaries(temporary)
        name = f'{temporary_prefix(temporary)}{secrets.token_hex(4)}.tmp'
        try:
            super().save_checkpoint(out_dir, name, *args, **kwargs)
            replace_durably(osp.join(out_dir, name), osp.join(out_dir, filename))
        except BaseException:
            if osp.isfile(osp.join(out_dir, name)):
                os.unlink(osp.join(out_dir, name))
            raise


def compile_towers(model: nn.Module, options: Union[bool, dict, None],
                   logger: logging.Logger) -> bool:
    """The config's ``compile`` setting for a model with ``compile_towers`` (ViLReF): its
    towers, momentum copies included, are compiled in place, so the training step, its hooks
    and the checkpoints stay as they are.

    Args:
        model (nn.Module): The model, possibly in a wrapper.
        options (bool | dict | None): ``compile``: True, or :func:`torch.compile`'s options
            (MMEngine's ``target`` is ignored).
        logger (logging.Logger): Where to say so.

    Returns:
        bool: Whether the towers were compiled (False: no setting, or another model, which
        the caller compiles as MMEngine does).
    """
    towers = model.module if is_model_wrapper(model) else model
    if not options or not hasattr(towers, 'compile_towers'):
        return False
    towers.compile_towers(**({} if options is True else
                             {key: value for key, value in options.items() if key != 'target'}))
    logger.info('compiled the towers (torch.compile); the first iterations are slow')
    return True


# MMEngine's root registry: mmpretrain's and mmseg's tools/train.py build ``runner_type`` there
# before any default scope is set, and every scope's registry falls back to it.
@RUNNERS.register_module()
class ViLReFRunner(ViLReFRunnerMixin, Runner):
    """MMEngine :class:`~mmengine.runner.Runner` with :class:`ViLReFRunnerMixin` (durable
    checkpoints holding every rank's random states, resume from the newest complete one, own
    dataloader generators) that also

    - evaluates (:meth:`test`, :meth:`val`) only a checkpoint that sets every weight of the
      model (:func:`~vilref_mm.utils.checkpoint.load_state_dict_completely`);
    - runs distributed on machines without CUDA: the ``pytorch`` launcher gets a gloo process
      group, and the model is wrapped in DDP without ``device_ids``; the process group is
      destroyed at exit;
    - compiles a ViLReF's towers for the config's ``compile`` setting (``compile_towers``);
    - restores this rank's random states on resume (:meth:`resume`): MMEngine checkpoints
      only the seed, so dropout and FLIP masks would restart from it;
    - is built quietly by ``build_runner(cfg, quiet=True)``.

    Every checkpoint it reads (``load_from``, ``--resume``, ``init_cfg``) goes through the trust
    rule of :mod:`vilref_mm.utils.checkpoint`, inside :func:`checkpoint_rule` only: MMEngine's
    loader stays as it is for the rest of the process.
    """

    #: While True, :meth:`load_checkpoint` requires every weight of the model.
    _evaluating = False

    #: While True, the consoles of the runners being built show warnings and errors only
    #: (:func:`build_runner` sets it).
    quiet_build = False

    #: The random states (by rank) of the checkpoint :meth:`load_checkpoint` read last.
    _loaded_random_states: Optional[List[Dict[str, Any]]] = None

    @classmethod
    def from_cfg(cls, cfg: Config) -> 'ViLReFRunner':
        """As :meth:`Runner.from_cfg`; a config with a ``strategy`` (which only MMEngine's
        ``FlexibleRunner`` reads) is refused instead of training without it."""
        if cfg.get('strategy') is not None:
            raise ValueError(
                f'{cfg.filename or "the config"}: `strategy` ({cfg.strategy.get("type")}) is '
                f'read by FlexibleRunner only, but runner_type is {cls.__name__}; set '
                "runner_type='ViLReFFlexibleRunner' (docs/pretrain.md, FlexibleRunner "
                'strategies) or remove `strategy`')
        return super().from_cfg(cfg)

    def build_logger(self, log_level: Union[int, str] = 'INFO', log_file: Optional[str] = None,
                     **kwargs) -> MMLogger:
        logger = super().build_logger(log_level, log_file, **kwargs)
        if self.quiet_build:
            for handler in console_handlers(logger):
                handler.addFilter(_warnings_only)
        return logger

    def setup_env(self, env_cfg: Dict) -> None:
        if self.distributed and not is_distributed() and not torch.cuda.is_available():
            init_cpu_process_group(self.launcher, env_cfg.get('dist_cfg', {}).get('timeout'))
        super().setup_env(env_cfg)
        if is_distributed():
            destroy_process_group_at_exit()

    def wrap_model(self, model_wrapper_cfg: Optional[Dict],
                   model: nn.Module) -> nn.Module:
        if self.distributed and not torch.cuda.is_available():
            model_wrapper_cfg = dict(model_wrapper_cfg or {})
            model_wrapper_cfg.setdefault('type', 'MMDistributedDataParallel')
            model_wrapper_cfg.setdefault('broadcast_buffers', False)
            model_wrapper_cfg.setdefault('find_unused_parameters',
                                         self.cfg.get('find_unused_parameters', False))
            model_wrapper_cfg['device_ids'] = None
        return super().wrap_model(model_wrapper_cfg, model)

    def load_checkpoint(self, filename: str, map_location: Union[str, object] = 'cpu',
                        strict: bool = False,
                        revise_keys: Sequence[Tuple[str, str]] = ((r'^module.', ''), )
                        ) -> dict:
        """MMEngine's ``load_checkpoint`` (also the one :meth:`resume` calls) under the trust
        rule (:func:`~vilref_mm.utils.checkpoint.checkpoint_rule`); while evaluating, every
        weight of the model must come from the checkpoint (else
        :class:`IncompleteWeightsError`)."""
        if not self._evaluating:
            with checkpoint_rule():
                checkpoint = super().load_checkpoint(filename, map_location, strict,
                                                     list(revise_keys))
            self._loaded_random_states = checkpoint.get('meta', {}).get('random_states')
            return checkpoint
        with checkpoint_rule():
            checkpoint = _load_checkpoint(filename, map_location=map_location)
        self.call_hook('after_load_checkpoint', checkpoint=checkpoint)
        state_dict = checkpoint.get('state_dict', checkpoint)
        revised = OrderedDict()
        for key, value in state_dict.items():
            for pattern, replacement in revise_keys:
                key = re.sub(pattern, replacement, key)
            revised[key] = value
        revised._metadata = getattr(state_dict, '_metadata', OrderedDict())
        model = self.model.module if is_model_wrapper(self.model) else self.model
        unexpected = load_state_dict_completely(model, revised, filename)
        if unexpected:
            self.logger.info(f'{filename}: ignored {len(unexpected)} keys the model does not '
                             f'have (e.g. {unexpected[:3]})')
        self._has_loaded = True
        self.logger.info(f'Load checkpoint from {filename}')
        return checkpoint

    def _init_model_weights(self) -> None:
        """MMEngine's, with ``init_cfg=dict(type='Pretrained')`` read under the trust rule."""
        with checkpoint_rule():
            super()._init_model_weights()

    def resume(self, filename: str, resume_optimizer: bool = True,
               resume_param_scheduler: bool = True,
               map_location: Union[str, object] = 'default') -> None:
        """MMEngine's ``resume``, then this rank's random states from the checkpoint (after
        MMEngine's, which reseeds when the checkpoint's seed differs from the config's;
        :func:`~vilref_mm.engine.random_state.restore_rank_random_state`)."""
        super().resume(filename, resume_optimizer, resume_param_scheduler, map_location)
        states, self._loaded_random_states = self._loaded_random_states, None
        restore_rank_random_state(states, get_rank(), self.world_size, filename, self.logger)

    def _maybe_compile(self, target: str) -> None:
        """The config's ``compile`` setting: a model with ``compile_towers`` (ViLReF) compiles
        its towers in place, momentum copies included, so the training step, its hooks and
        the checkpoints stay as they are; other models compile ``target`` as MMEngine does."""
        if not compile_towers(self.model, self.cfg.get('compile'), self.logger):
            super()._maybe_compile(target)

    @contextlib.contextmanager
    def _evaluating_loaded_weights(self) -> Iterator[None]:
        """While evaluating, :meth:`load_checkpoint` requires every weight of the model."""
        self._evaluating = True
        try:
            yield
        finally:
            self._evaluating = False

    def test(self) -> dict:
        with self._evaluating_loaded_weights():
            return super().test()

    def val(self) -> dict:
        with self._evaluating_loaded_weights():
            return super().val()


def build_runner(cfg: Config, quiet: bool = False) -> Runner:
    """Build the runner of a config: the one it names in ``runner_type``, else ViLReFRunner.

    Args:
        cfg (Config): The config.
        quiet (bool): Keep the console to warnings and errors while the runner is built
            (MMEngine logs the environment, the whole config and the hooks, hundreds of
            lines), then at the config's ``log_level`` without :data:`PARAMETER_MESSAGES`;
            the log file keeps everything. The build is quiet for ViLReFRunner and its
            subclasses; another ``runner_type`` builds as usual. Defaults to False.

    Returns:
        Runner: The runner.
    """
    ViLReFRunner.quiet_build = quiet
    try:
        runner = RUNNERS.build(cfg) if 'runner_type' in cfg else ViLReFRunner.from_cfg(cfg)
    finally:
        ViLReFRunner.quiet_build = False
        if quiet:  # the runner's logger is MMEngine's current one, also if the build failed
            for handler in console_handlers(MMLogger.get_current_instance()):
                handler.removeFilter(_warnings_only)
    if quiet:
        drop_console_messages(runner.logger, PARAMETER_MESSAGES)
    return runner
