"""Short CPU trainings of the synthetic transfer configs report AUROC (tools/train.py's runner).

The encoder is a 32-wide one-block ViT whose weights come from a tiny random ViLReF
checkpoint (prefix 'image_encoder.'), on a few generated synthetic photographs.
"""
from pathlib import Path

import pytest
import torch
from mmengine.config import Config
from mmpretrain.registry import MODELS

import vilref_mm  # noqa: F401  registers the plugin's modules
from vilref_mm.utils.config import innermost_dataset_cfg
from vilref_mm.datasets.synthetic import generate_synthetic_fundus
from vilref_mm.engine import build_runner

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = ROOT / 'configs/classification'
PROBE = CONFIGS / 'linear-probe_vilref-vit-tiny-p16_1xb32-10e_synthetic-112px.py'
FINETUNE = CONFIGS / 'finetune_vilref-vit-tiny-p16_1xb32-5e_synthetic-112px.py'
FEW_SHOT = CONFIGS / 'few_shot/linear-probe_vilref-vit-tiny-p16_1xb32-10e_synthetic-10pct-112px.py'
EPOCHS = 2


@pytest.fixture(scope='module')
def synthetic_data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp('synthetic')
    generate_synthetic_fundus(root, num_train=24, num_val=8, num_test=16, size=112, seed=1)
    return root


@pytest.fixture(scope='module')
def vilref_checkpoint(tmp_path_factory) -> Path:
    """A tiny random ViLReF (tests/data/configs/tiny_vilref.py) saved as tensors only."""
    torch.manual_seed(0)
    model = MODELS.build(Config.fromfile(ROOT / 'tests/data/configs/tiny_vilref.py').model)
    model.init_weights()
    path = tmp_path_factory.mktemp('vilref') / 'tiny_vilref.pth'
    torch.save({'state_dict': model.state_dict()}, path)
    return path


def train_and_test(config: Path, work_dir: Path, data_root: Path, checkpoint: Path):
    """Train ``config`` for a few iterations with the tiny encoder; return the runner and the
    test metrics."""
    cfg = Config.fromfile(config)
    cfg.work_dir = str(work_dir)
    cfg.merge_from_dict({
        'model.backbone.arch': dict(embed_dims=32, num_layers=1, num_heads=2,
                                    feedforward_channels=64),
        'model.backbone.img_size': 32,  # the checkpoint's; 112 px inputs resize the grid
        'model.backbone.init_cfg.checkpoint': str(checkpoint),
        'model.head.in_channels': 32,
        'train_cfg.max_epochs': EPOCHS,
        'train_cfg.val_interval': EPOCHS,
        'default_hooks.checkpoint.interval': EPOCHS,
        'log_level': 'WARNING',
    })
    if cfg.model.backbone.get('frozen_stages'):
        cfg.model.backbone.frozen_stages = 1
    for split in ('train', 'val', 'test'):
        loader = cfg[f'{split}_dataloader']
        loader.update(batch_size=8, num_workers=0, persistent_workers=False)
        innermost_dataset_cfg(loader).data_root = str(data_root)
    runner = build_runner(cfg)
    runner.train()
    return runner, runner.test()


def encoder_weights(checkpoint: Path) -> dict:
    state = torch.load(checkpoint, weights_only=True)['state_dict']
    return {k[len('image_encoder.'):]: v for k, v in state.items()
            if k.startswith('image_encoder.')}


@pytest.mark.parametrize('config', [PROBE, FINETUNE, FEW_SHOT],
                         ids=['linear-probe', 'finetune', 'few-shot'])
def test_training_reports_auroc(tmp_path, synthetic_data, vilref_checkpoint, config):
    runner, metrics = train_and_test(config, tmp_path, synthetic_data, vilref_checkpoint)
    assert 0 <= metrics['auroc/macro'] <= 100
    assert 'auroc/normal' in metrics and 'multi-label/mAP' in metrics
    assert (tmp_path / f'epoch_{EPOCHS}.pth').is_file()

    pretrained = encoder_weights(vilref_checkpoint)
    trained = runner.model.backbone.state_dict()
    assert set(trained) == set(pretrained)
    changes = [(trained[k] - pretrained[k]).abs().max().item() for k in pretrained]
    if config == FINETUNE:  # the encoder moves at lr 1e-6
        assert 0 < max(changes) < 1e-3
    else:  # the encoder stays the pre-trained one
        assert max(changes) == 0
    if config == FEW_SHOT:
        dataset = runner.train_dataloader.dataset
        assert type(dataset.dataset).__name__ == 'FewShotDataset'
        assert len(dataset) == 10 * len(dataset.dataset) < 10 * 24
