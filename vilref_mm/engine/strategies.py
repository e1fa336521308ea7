"""MMEngine strategies for :class:`~mmengine.runner.FlexibleRunner` that read checkpoints
under vilref_mm's trust rule and resume every rank's random streams:
``strategy=dict(type='ViLReFSingleDeviceStrategy')``, ``dict(type='ViLReFDDPStrategy')`` or
``dict(type='ViLReFFSDPStrategy')`` in a config with ``runner_type='ViLReFFlexibleRunner'``
(``configs/_base_/strategies/``)."""
import re
from typing import List, Optional, Sequence, Union

import torch
from mmengine.config import Config
from mmengine._strategy import DDPStrategy, SingleDeviceStrategy
from mmengine.device import get_device
from mmengine.dist import is_distributed
from mmengine.model import is_model_wrapper
from mmengine.registry import RUNNERS, STRATEGIES
from mmengine.runner import FlexibleRunner, get_state_dict, weights_to_cpu
from torch import nn
from torch.distributed.checkpoint.state_dict import (StateDictOptions, get_model_state_dict,
                                                     get_optimizer_state_dict,
                                                     set_optimizer_state_dict)
from torch.distributed.device_mesh import init_device_mesh
from torch.distributed.fsdp import fully_shard
from torch.distributed.tensor import DTensor, distribute_tensor

from vilref_mm.utils.checkpoint import checkpoint_rule
from .random_state import restore_rank_random_state
from .runner import ViLReFRunnerMixin, compile_towers, init_cpu_process_group


class ViLReFStrategyMixin:
    """A strategy as ``ViLReFRunner`` trains: its checkpoint reads (``load_from``, resume,
    which loads through ``load_checkpoint``, and ``init_cfg=dict(type='Pretrained')``) follow
    the trust rule (:func:`~vilref_mm.utils.checkpoint.checkpoint_rule`), its resume restores
    this rank's random states (which ``ViLReFFlexibleRunner`` saves), and the ``compile``
    setting compiles a ViLReF's towers in place (``compile_towers``), so the training step,
    its hooks and the checkpoints stay as they are."""

    def load_checkpoint(self, filename: str, **kwargs) -> dict:
        with checkpoint_rule():
            return super().load_checkpoint(filename, **kwargs)

    def compile_model(self, model: nn.Module, compile: Union[dict, bool] = False) -> nn.Module:
        if compile_towers(model, compile, self.logger):
            return model
        return super().compile_model(model, compile)

    def resume(self, filename: str, **kwargs) -> dict:
        checkpoint = super().resume(filename, **kwargs)
        restore_rank_random_state(checkpoint['meta'].get('random_states'), self.rank,
                                  self.world_size, filename, self.logger)
        return checkpoint

    def _init_model_weights(self, model: nn.Module) -> nn.Module:
        with checkpoint_rule():
            return super()._init_model_weights(model)


@STRATEGIES.register_module()
class ViLReFSingleDeviceStrategy(ViLReFStrategyMixin, SingleDeviceStrategy):
    """MMEngine's ``SingleDeviceStrategy`` reading checkpoints under the trust rule."""


@STRATEGIES.register_module()
class ViLReFDDPStrategy(ViLReFStrategyMixin, DDPStrategy):
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


#: FSDP1's sharding strategies and FSDP2's ``reshard_after_forward`` that gives each.
SHARDING_STRATEGIES = {'FULL_SHARD': True, 'SHARD_GRAD_OP': False}


@STRATEGIES.register_module()
class ViLReFFSDPStrategy(ViLReFDDPStrategy):
    """Fully sharded data parallel training with PyTorch's FSDP2 (``fully_shard``), on GPUs
    (NCCL) and on CPUs (gloo), where MMEngine's ``FSDPStrategy`` (FSDP1) needs CUDA.

    Each parameter, its gradient and its optimizer state are split along dim 0 over the
    ranks (a ``DTensor``); a unit's parameters are gathered for its forward (and backward).
    The units: every layer of an ``nn.ModuleList`` (the transformer layers of both towers),
    the modules named in ``unit_classes``, every child of the model with parameters (the
    towers), then the model. ViLReF's momentum towers are deep copies of the online towers,
    so they are sharded alike and each rank's EMA lerps its own shards
    (:meth:`ViLReF.momentum_update`); a unit without trainable parameters (a momentum tower,
    which has no backward) is resharded after its forward under either strategy. Momentum
    features reach the queue through the same all-gather as under DDP.

    FSDP2 refuses 0-d parameters (``logit_scale``): they are held as 1-element vectors while
    training. Mixed precision is ``--amp``'s autocast, as under DDP (FSDP2's own policy would
    cast the parameters but not the momentum projections, which are buffers). Checkpoints
    hold the whole model in the layout ``ViLReFRunner`` writes (every rank gathers, rank 0
    writes) and the optimizer state keyed by parameter name; a checkpoint of either runner
    initialises (``load_from``) a run under this strategy.

    Args:
        sharding_strategy (str): ``'FULL_SHARD'`` (ZeRO-3: parameters are gathered again
            for the backward) or ``'SHARD_GRAD_OP'`` (ZeRO-2: they stay gathered from the
            forward to the backward). Defaults to ``'FULL_SHARD'``.
        unit_classes (Sequence[str]): Class names of further modules to shard as units
            (e.g. ``['AntiAliasedBottleneck']`` for the ModifiedResNet's blocks).
        **kwargs: :class:`ViLReFDDPStrategy`'s arguments.
    """

    def __init__(self, *, sharding_strategy: str = 'FULL_SHARD',
                 unit_classes: Sequence[str] = (), **kwargs) -> None:
        if sharding_strategy not in SHARDING_STRATEGIES:
            raise ValueError(f'ViLReFFSDPStrategy: sharding_strategy {sharding_strategy!r} is '
                             f'not one of {sorted(SHARDING_STRATEGIES)}')
        super().__init__(**kwargs)
        self.reshard_after_forward = SHARDING_STRATEGIES[sharding_strategy]
        self.unit_classes = set(unit_classes)
        #: Names of the 0-d parameters held as 1-element vectors while training.
        self.scalar_names: List[str] = []
        #: The gathered model and optimizer states of the checkpoint being saved.
        self._gathered: Optional[dict] = None

    def _units(self, model: nn.Module) -> List[nn.Module]:
        """The modules sharded as units, inner ones first (``fully_shard``'s order)."""
        listed = {id(module) for parent in model.modules()
                  if isinstance(parent, nn.ModuleList) for module in parent}
        listed.update(id(child) for child in model.children())
        units = [module for module in model.modules()
                 if module is not model and any(True for _ in module.parameters())
                 and (id(module) in listed or type(module).__name__ in self.unit_classes)]
        return units[::-1]  # model.modules() lists parents before their children

    def _wrap_model(self, model: nn.Module) -> nn.Module:
        model = self.convert_model(model).to(get_device())
        self.scalar_names = _scalars_as_vectors(model)
        mesh = init_device_mesh(get_device(), (self.world_size, ))
        for unit in self._units(model):
            trainable = any(param.requires_grad for param in unit.parameters())
            fully_shard(unit, mesh=mesh,
                        reshard_after_forward=self.reshard_after_forward or not trainable)
        fully_shard(model, mesh=mesh, reshard_after_forward=self.reshard_after_forward)
        return model

    def save_checkpoint(self, filename: str, **kwargs) -> None:
        """Every rank gathers the whole model and optimizer state (collectives); rank 0
        writes the checkpoint as :class:`ViLReFDDPStrategy` does."""
        gathered = dict(model=self.model_state_dict())
        if kwargs.get('save_optimizer', True) and hasattr(self, 'optim_wrapper'):
            gathered['optimizer'] = self.optim_state_dict()
        self._gathered = gathered
        try:
            super().save_checkpoint(filename, **kwargs)
        finally:
            self._gathered = None

    def model_state_dict(self) -> dict:
        """The whole model's state on CPU on rank 0 (a collective; empty on other ranks),
        0-d parameters as 0-d tensors."""
        if self._gathered is not None:
            return self._gathered['model']
        state = get_model_state_dict(
            self.model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
        for name in self.scalar_names:
            if name in state:
                state[name] = state[name].reshape(())
        return state

    def optim_state_dict(self) -> dict:
        """The whole optimizer state keyed by parameter name, on CPU on rank 0 (a
        collective), with the optimizer wrapper's ``base_param_settings`` (the base learning
        rate the schedulers also set), as ``OptimWrapper.state_dict`` holds it."""
        if self._gathered is not None:
            return self._gathered['optimizer']
        state = get_optimizer_state_dict(
            self.model, self.optim_wrapper.optimizer,
            options=StateDictOptions(full_state_dict=True, cpu_offload=True))
        if self.optim_wrapper.base_param_settings is not None:
            state['base_param_settings'] = self.optim_wrapper.base_param_settings
        return state

    def load_model_state_dict(self, state_dict: dict, *, strict: bool = False,
                              revise_keys: Sequence = ((r'^module.', ''), )) -> None:
        """Load a whole (unsharded) state dict, as any rank reads it from a checkpoint, into
        this rank's shards (a collective).

        Only the checkpoint's keys are loaded, through the model's ``load_state_dict``, so the
        model sees what is missing: a ViLReF loading a checkpoint without momentum towers
        builds them from the loaded towers, as under DDP. (``set_model_state_dict`` would
        fill the missing keys with the model's current values.)
        """
        current = self.model.state_dict()
        sharded = {}
        for key, value in state_dict.items():
            for pattern, replacement in revise_keys:
                key = re.sub(pattern, replacement, key)
            value = value.reshape(1) if key in self.scalar_names else value
            like = current.get(key)
            if isinstance(like, DTensor):
                value = distribute_tensor(value.to(like.device, like.dtype), like.device_mesh,
                                          like.placements)
            sharded[key] = value
        self.model.load_state_dict(sharded, strict=strict)

    def load_optim_state_dict(self, state_dict: dict) -> None:
        """Load an optimizer state saved by :meth:`optim_state_dict` into this rank's
        shards."""
        state_dict = dict(state_dict)
        base_param_settings = state_dict.pop('base_param_settings', None)
        if base_param_settings is not None:
            self.optim_wrapper.base_param_settings = base_param_settings
        set_optimizer_state_dict(self.model, self.optim_wrapper.optimizer, state_dict,
                                 options=StateDictOptions(full_state_dict=True))


def _scalars_as_vectors(model: nn.Module) -> List[str]:
    """Replace each 0-d parameter of ``model`` by a 1-element vector parameter, in place.

    Returns:
        list[str]: The names of the replaced parameters.
    """
    names = []
    for name, param in list(model.named_parameters()):
        if param.dim() == 0:
            owner, _, attr = name.rpartition('.')
            setattr(model.get_submodule(owner), attr,
                    nn.Parameter(param.detach().reshape(1), requires_grad=param.requires_grad))
            names.append(name)
    return names


@RUNNERS.register_module()
class ViLReFFlexibleRunner(ViLReFRunnerMixin, FlexibleRunner):
    """MMEngine's :class:`~mmengine.runner.FlexibleRunner` with :class:`ViLReFRunnerMixin`:
    durable checkpoints holding every rank's random states (restored on resume by the
    ``ViLReF*Strategy`` strategies), resume from the newest complete checkpoint, and
    dataloaders with their own ``torch.Generator``, so the model is initialised as under
    ``ViLReFRunner`` (FlexibleRunner builds it after the train loop, whose dataloader
    iterator starts when the loop is built). It reads the config's ``compile``, which
    MMEngine 0.10.7's ``FlexibleRunner.from_cfg`` leaves out, and without a ``strategy`` it
    runs ``ViLReFSingleDeviceStrategy`` (launcher ``none``) or ``ViLReFDDPStrategy``."""

    def build_strategy(self, strategy=None, launcher: str = 'none', **kwargs):
        if strategy is None:
            strategy = dict(type='ViLReFSingleDeviceStrategy' if launcher == 'none'
                            else 'ViLReFDDPStrategy')
        return super().build_strategy(strategy, launcher, **kwargs)

    @classmethod
    def from_cfg(cls, cfg: Config) -> 'ViLReFFlexibleRunner':
        runner = super().from_cfg(cfg)
        compile = cfg.get('compile', False)
        if not isinstance(compile, (bool, dict)):
            raise TypeError(f'compile should be a bool or dict, but got {type(compile)}')
        runner._compile = compile
        return runner
