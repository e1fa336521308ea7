"""MMEngine strategies for :class:`~mmengine.runner.FlexibleRunner` that read checkpoints
under vilref_mm's trust rule: ``strategy=dict(type='ViLReFSingleDeviceStrategy')`` or
``dict(type='ViLReFDDPStrategy')`` in a config with ``runner_type='FlexibleRunner'``."""
from mmengine._strategy import DDPStrategy, SingleDeviceStrategy
from mmengine.registry import STRATEGIES
from torch import nn

from vilref_mm.utils.checkpoint import checkpoint_rule


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
    """MMEngine's ``DDPStrategy`` reading checkpoints under the trust rule."""
