"""Every config of configs/classification parses, and its model, datasets and optimizer build."""
from pathlib import Path

import pytest
import torch
from mmengine.config import Config
from mmengine.optim import build_optim_wrapper
from mmpretrain.registry import DATASETS, METRICS, MODELS

import vilref_mm  # noqa: F401  registers the plugin's modules
from vilref_mm.apis.segmentation import innermost_dataset_cfg

ROOT = Path(__file__).resolve().parents[2]
CONFIG_DIR = ROOT / 'configs/classification'
CONFIGS = sorted(path for path in CONFIG_DIR.rglob('*.py') if '_base_' not in path.parts)
# The datasets of the public-data configs; the synthetic ones use the image-report manifests.
DATASET_CLASSES = {'RFMiDDataset': 45, 'ODIRDataset': 8, 'MessidorDataset': 4,
                   'REFUGEGlaucomaDataset': 2, 'ImageReportDataset': 25}
MULTI_LABEL = {'RFMiDDataset', 'ODIRDataset', 'ImageReportDataset'}


def config_id(path: Path) -> str:
    return str(path.relative_to(CONFIG_DIR))


def test_every_dataset_and_method_has_configs():
    names = [config_id(path) for path in CONFIGS]
    for dataset in ('rfmid', 'odir5k', 'messidor', 'refuge-glaucoma'):
        for method in ('linear-probe', 'finetune'):
            assert f'{method}_vilref-vit-b16_1xb32-30e_{dataset}-224px.py' in names
        for percent in (1, 5, 10, 20):
            assert (f'few_shot/linear-probe_vilref-vit-b16_1xb32-30e_{dataset}-{percent}pct-'
                    '224px.py') in names
    assert sum('synthetic' in name for name in names) == 3


@pytest.mark.parametrize('path', CONFIGS, ids=config_id)
def test_config_is_consistent(path):
    cfg = Config.fromfile(path)
    dataset = innermost_dataset_cfg(cfg.train_dataloader)
    assert DATASETS.get(dataset.type) is not None
    head = cfg.model.head
    assert head.num_classes == DATASET_CLASSES[dataset.type]
    multi_label = dataset.type in MULTI_LABEL
    assert head.type == ('MultiLabelLinearClsHead' if multi_label else 'LinearClsHead')
    assert head.loss.get('use_sigmoid', False) == multi_label  # BCE for multi-label
    assert head.in_channels == (768 if 'vit-b16' in path.name else 192)
    assert cfg.model.backbone.init_cfg.prefix == 'image_encoder.'
    for split in ('val', 'test'):
        assert innermost_dataset_cfg(cfg[f'{split}_dataloader']).type == dataset.type
        assert any(evaluator.type == 'AUROC' for evaluator in cfg[f'{split}_evaluator'])
        assert all(METRICS.get(evaluator.type) for evaluator in cfg[f'{split}_evaluator'])
    if 'messidor' in path.name:
        assert any(e.type == 'QuadraticWeightedKappa' for e in cfg.test_evaluator)

    probe = path.name.startswith('linear-probe')
    arch = cfg.model.backbone.arch
    num_blocks = arch['num_layers'] if isinstance(arch, dict) else 12  # 'b': ViT-B/16
    assert cfg.model.backbone.get('frozen_stages', 0) == (num_blocks if probe else 0)
    if probe:  # CLIP's protocol: features of the test transform
        assert dataset.pipeline == innermost_dataset_cfg(cfg.test_dataloader).pipeline
    else:  # encoder lr 1e-6
        encoder_mult = cfg.optim_wrapper.paramwise_cfg.custom_keys.backbone.lr_mult
        assert cfg.optim_wrapper.optimizer.lr * encoder_mult == pytest.approx(1e-6)

    if path.parent.name == 'few_shot':
        wrapper = cfg.train_dataloader.dataset
        assert wrapper.type == 'RepeatDataset' and wrapper.dataset.type == 'FewShotDataset'
        percent = int(path.name.split('pct')[0].rsplit('-', 1)[1])
        assert wrapper.dataset.fraction == pytest.approx(percent / 100)
        assert wrapper.times == round(100 / percent) and wrapper.dataset.seed == 0
        base = Config.fromfile(CONFIG_DIR / path.name.replace(f'-{percent}pct', ''))
        assert wrapper.dataset.dataset == base.train_dataloader.dataset


def distinct_models():
    """One config per distinct model, with the encoder's pretrained weights left out."""
    models = {}
    for path in CONFIGS:
        model = Config.fromfile(path).model
        model.backbone.init_cfg = None
        models.setdefault(repr(model.to_dict()), (path, model))
    return sorted(models.values())


@pytest.mark.parametrize('path,model_cfg', distinct_models(), ids=lambda v: (
    config_id(v) if isinstance(v, Path) else ''))
def test_model_builds_and_trains_what_it_should(path, model_cfg):
    cfg = Config.fromfile(path)
    model = MODELS.build(model_cfg)
    size = model_cfg.backbone.img_size
    with torch.no_grad():
        scores = model(torch.randn(1, 3, size, size), mode='predict')[0].pred_score
    assert scores.shape == (model_cfg.head.num_classes, )

    optim_wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    head_params = {id(p) for p in model.head.parameters()}
    probe = path.name.startswith('linear-probe')
    head_lr = cfg.optim_wrapper.optimizer.lr
    for group in optim_wrapper.optimizer.param_groups:
        for param in group['params']:
            in_head = id(param) in head_params
            if probe:  # only the head trains
                assert param.requires_grad == in_head
            else:  # encoder lr 1e-6
                assert param.requires_grad
                assert group['lr'] == pytest.approx(head_lr if in_head else 1e-6)
    if 'vit-b16' in path.name:
        assert head_lr == 1e-3
    assert {id(p) for p in model.parameters() if p.requires_grad} >= head_params
