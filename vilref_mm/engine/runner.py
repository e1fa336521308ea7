"""The runner vilref_mm's tools use: MMEngine's Runner plus two fixes for current torch."""
from datetime import timedelta
from typing import Dict, Optional

import torch
import torch.distributed as dist
from mmengine.config import Config
from mmengine.dist import is_distributed
from mmengine.runner import Runner
from mmpretrain.registry import RUNNERS
from torch import nn

from vilref_mm.utils.checkpoint import trusted_checkpoints


@RUNNERS.register_module()
class ViLReFRunner(Runner):
    """MMEngine :class:`~mmengine.runner.Runner` that

    - resumes and ``load_from``-loads its own checkpoints under torch >= 2.6 (they hold Python
      objects that ``weights_only=True`` rejects), while every other checkpoint (``init_cfg``,
      converters) is still read with ``weights_only=True``;
    - runs distributed on machines without CUDA: the ``pytorch`` launcher gets a gloo process
      group, and the model is wrapped in DDP without ``device_ids``.
    """

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



def build_runner(cfg: Config) -> Runner:
    """Build the runner of a config: the one it names in ``runner_type``, else ViLReFRunner."""
    if 'runner_type' in cfg:
        return RUNNERS.build(cfg)
    return ViLReFRunner.from_cfg(cfg)
