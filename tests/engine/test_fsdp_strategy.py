"""ViLReFFSDPStrategy's choices, checked without a process group: which modules are sharded
as units (and in which order), the 0-d parameters held as vectors, the sharding strategies.
Training under it is checked end to end in tests/tools/test_flexible_pretrain.py."""
from pathlib import Path

import pytest
import torch
from mmengine.config import Config
from mmpretrain.registry import MODELS
from torch import nn

from vilref_mm.engine.strategies import ViLReFFSDPStrategy, _scalars_as_vectors
from vilref_mm.models.vilref import ViLReF

DEMO_CONFIG = (Path(__file__).resolve().parents[2]
               / 'configs/vilref/vilref_vit-tiny-p16_1xb32-450it_synthetic-112px.py')


@pytest.fixture(scope='module')
def model() -> ViLReF:
    return MODELS.build(Config.fromfile(DEMO_CONFIG).model)


def test_units_are_layers_and_towers_inner_first(model, tmp_path):
    units = ViLReFFSDPStrategy(work_dir=str(tmp_path))._units(model)
    positions = {id(unit): index for index, unit in enumerate(units)}
    towers = ('image_encoder', 'text_encoder', 'momentum_image_encoder', 'momentum_text_encoder')
    for name in towers:
        tower = getattr(model, name)
        layers = [module for module in tower.modules() if isinstance(module, nn.ModuleList)
                  and len(module) > 1 and any(True for _ in module[0].parameters())]
        assert layers, name  # the ViT's layers and BERT's encoder layers
        for layer in layers[0]:
            # every layer is a unit, sharded before the tower that holds it
            assert positions[id(layer)] < positions[id(tower)], name
    # the towers are units; the model itself is sharded last, by _wrap_model
    assert {id(getattr(model, name)) for name in towers} <= set(positions)
    assert all(unit is not model for unit in units)
    # online and momentum towers are sharded alike: the same unit structure
    for online, momentum in (('image_encoder', 'momentum_image_encoder'),
                             ('text_encoder', 'momentum_text_encoder')):
        assert ([type(unit) for unit in units if _inside(unit, getattr(model, online))]
                == [type(unit) for unit in units if _inside(unit, getattr(model, momentum))])


def _inside(module: nn.Module, tower: nn.Module) -> bool:
    return any(module is submodule for submodule in tower.modules())


def test_unit_classes_add_modules(model, tmp_path):
    plain = ViLReFFSDPStrategy(work_dir=str(tmp_path))._units(model)
    more = ViLReFFSDPStrategy(work_dir=str(tmp_path), unit_classes=['LayerNorm'])._units(model)
    added = [unit for unit in more if all(unit is not other for other in plain)]
    assert added and all(isinstance(unit, nn.LayerNorm) for unit in added)


def test_scalar_parameters_become_vectors():
    module = nn.Module()
    module.inner = nn.Module()
    module.inner.scale = nn.Parameter(torch.tensor(2.5))
    module.weight = nn.Parameter(torch.ones(2, 3))
    assert _scalars_as_vectors(module) == ['inner.scale']
    assert module.inner.scale.shape == (1, ) and module.inner.scale.item() == 2.5
    assert module.inner.scale.requires_grad and module.weight.shape == (2, 3)


def test_sharding_strategies(tmp_path):
    assert ViLReFFSDPStrategy(work_dir=str(tmp_path)).reshard_after_forward
    assert not ViLReFFSDPStrategy(work_dir=str(tmp_path),
                                  sharding_strategy='SHARD_GRAD_OP').reshard_after_forward
    with pytest.raises(ValueError, match="'NO_SHARD' is not one of"):
        ViLReFFSDPStrategy(work_dir=str(tmp_path), sharding_strategy='NO_SHARD')
