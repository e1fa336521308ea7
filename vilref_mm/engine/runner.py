"""The runner vilref_mm's tools use (MMEngine's Runner plus two fixes for current torch) and
its quiet console."""
import logging
from datetime import timedelta
from typing import Dict, Iterator, Optional, Sequence, Union

import torch
import torch.distributed as dist
from mmengine.config import Config
from mmengine.dist import is_distributed
from mmengine.logging import MMLogger
from mmengine.runner import Runner
from mmpretrain.registry import RUNNERS
from torch import nn

from vilref_mm.utils.checkpoint import trusted_checkpoints

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


@RUNNERS.register_module()
class ViLReFRunner(Runner):
    """MMEngine :class:`~mmengine.runner.Runner` that

    - resumes and ``load_from``-loads its own checkpoints under torch >= 2.6 (they hold Python
      objects that ``weights_only=True`` rejects), while every other checkpoint (``init_cfg``,
      converters) is still read with ``weights_only=True``;
    - runs distributed on machines without CUDA: the ``pytorch`` launcher gets a gloo process
      group, and the model is wrapped in DDP without ``device_ids``;
    - is built quietly by ``build_runner(cfg, quiet=True)``.
    """

    #: While True, the consoles of the runners being built show warnings and errors only
    #: (:func:`build_runner` sets it).
    quiet_build = False

    def build_logger(self, log_level: Union[int, str] = 'INFO', log_file: Optional[str] = None,
                     **kwargs) -> MMLogger:
        logger = super().build_logger(log_level, log_file, **kwargs)
        if self.quiet_build:
            for handler in console_handlers(logger):
                handler.addFilter(_warnings_only)
        return logger

    def setup_env(self, env_cfg: Dict) -> None:
        if self.distributed and not is_distributed() and not torch.cuda.is_available():
            if self.launcher != 'pytorch':
                raise RuntimeError(
                    f'launcher {self.launcher!r} needs CUDA; on a CPU-only machine start '
                    'the processes with torchrun and --launcher pytorch')
            timeout = env_cfg.get('dist_cfg', {}).get('timeout')
            kwargs = {} if timeout is None else dict(timeout=timedelta(seconds=timeout))
            dist.init_process_group(backend='gloo', **kwargs)
        super().setup_env(env_cfg)

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

    def load_checkpoint(self, filename: str, *args, **kwargs) -> dict:
        with trusted_checkpoints():
            return super().load_checkpoint(filename, *args, **kwargs)


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
