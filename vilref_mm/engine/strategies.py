"""MMEngine strategies for :class:`~mmengine.runner.FlexibleRunner` that read checkpoints
under vilref_mm's trust rule: ``strategy=dict(type='ViLReFSingleDeviceStrategy')`` or
``dict(type='ViLReFDDPStrategy')`` in a config with ``runner_type='ViLReFFlexibleRunner'``
(``configs/_base_/strategies/ddp.py``)."""
from typing import Optional

import torch
from mmengine._strategy import DDPStrategy, SingleDeviceStrategy
from mmengine.dist import is_distributed
from mmengine.model import is_model_wrapper
from mmengine.registry import RUNNERS, STRATEGIES
from mmengine.runner import FlexibleRunner, get_state_dict, weights_to_cpu
from torch import nn

from vilref_mm.utils.checkpoint import checkpoint_rule
from .runner import ViLReFRunner, init_cpu_process_group


class CheckpointRuleStrategyMixin:
    """A strategy whose checkpoint reads (``load_from``, resume, which loads through
    ``load_checkpoint``, and ``init_cfg=dict(type='Pretrained')``) follow the trust rule
    (:func:`~vilref_mm.utils.checkpoint.checkpoint_rule`), as in ``ViLReFRunner``."""

    def load_checkpoint(self, filename: str, **kwargs) -> dict:
        with checkpoint_rule():
            return super().load_checkpoint(filename, **kwargs)

    def _init_model_weights(self, model: nn.Module) -> nn.Module:
        with checkpoint_rule():
            return super()._init_model_weights(model)


@STRATEGIES.register_module()
class ViLReFSingleDeviceStrategy(CheckpointRuleStrategyMixin, SingleDeviceStrategy):
    """MMEngine's ``SingleDeviceStrategy`` reading checkpoints under the trust rule."""


@STRATEGIES.register_module()
class ViLReFDDPStrategy(CheckpointRuleStrategyMixin, DDPStrategy):
    """MMEngine's ``DDPStrategy`` reading checkpoints under the trust rule, also on machines
    without CUDA, as ``ViLReFRunner`` runs: the ``pytorch`` launcher (torchrun) gets a gloo
    process group, destroyed at exit, and the model is wrapped in DDP without
    ``device_ids``. Its checkpoints hold the model's keys without DDP's ``module.``
    prefix, as ``ViLReFRunner``'s do."""

    def _setup_distributed(self, launcher: str = 'pytorch', backend: str = 'nccl',
                           timeout: Optional[int] = None, **kwargs) -> None:
        if torch.cuda.is_available() or is_distributed():
            if timeout is not None:
                kwargs['timeout'] = timeout
            return super()._setup_distributed(launcher, backend, **kwargs)
        init_cpu_process_group(launcher, timeout)

    def _wrap_model(self, model: nn.Module) -> nn.Module:
        if not torch.cuda.is_available() and not is_model_wrapper(model):
            self.model_wrapper = dict(self.model_wrapper or dict(broadcast_buffers=False),
                                      device_ids=None)
        return super()._wrap_model(model)

    def model_state_dict(self) -> dict:
        return weights_to_cpu(get_state_dict(self.model))


@RUNNERS.register_module()
class ViLReFFlexibleRunner(FlexibleRunner):
    """MMEngine's :class:`~mmengine.runner.FlexibleRunner` whose dataloaders each get their
    own ``torch.Generator`` (:meth:`ViLReFRunner.build_dataloader`): starting one never
    draws from the global torch generator, so the model is initialised as under
    ``ViLReFRunner`` (FlexibleRunner builds it after the train loop, whose dataloader
    iterator starts when the loop is built)."""

    build_dataloader = staticmethod(ViLReFRunner.build_dataloader)
