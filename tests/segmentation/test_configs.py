"""Every config of configs/segmentation: conventions, build, and a full-size prediction."""
import copy
import json
import re
from importlib.resources import files
from pathlib import Path

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.model import revert_sync_batchnorm
from mmengine.registry import DefaultScope
from mmpretrain.models.backbones import VisionTransformer
from mmpretrain.models.utils import resize_pos_embed
from mmseg.apis import inference_model
from mmseg.registry import DATASETS, MODELS

from vilref_mm.models import convert_checkpoint
from vilref_mm.utils.config import innermost_dataset_cfg

CONFIG_DIR = Path(__file__).resolve().parents[2] / 'configs' / 'segmentation'
CONFIGS = sorted(CONFIG_DIR.glob('*.py'))
SYNTHETIC_CONFIGS = [c for c in CONFIGS if '_synthetic-' in c.name]
#: Every width is divided by this in the reduced copies of the full-size configs.
SHRINK = 16
CLIP_MEAN = [122.771, 116.746, 104.094]
CLIP_STD = [68.501, 66.632, 70.323]
# {algorithm}_{backbone}_{gpus}xb{batch}-{schedule}_{dataset}-{crop}.py
NAME = re.compile(r'^(upernet|fcn)_vilref-(vit-b16|vit-l14|rn50|vit-mini-p16)_(\d+)xb(\d+)-(\w+)_'
                  r'(drive|chase-db1|stare|hrf|refuge|synthetic-vessels|synthetic-odoc)-'
                  r'(\d+)x(\d+)$')
DATASETS_BY_NAME = {'drive': 'DRIVEDataset', 'chase-db1': 'ChaseDB1Dataset',
                    'stare': 'STAREDataset', 'hrf': 'HRFDataset', 'refuge': 'REFUGEDataset',
                    'synthetic-vessels': 'DRIVEDataset', 'synthetic-odoc': 'REFUGEDataset'}


def config_id(path: Path) -> str:
    return path.stem


def shrink_model(cfg: Config) -> Config:
    """The config with every width divided by :data:`SHRINK` (same depths, heads, outputs).

    ViT-B/16 becomes 48 wide (12 blocks, 12 heads of 4), ViT-L/14 64 wide (24 blocks, 16
    heads of 4), ModifiedResNet-50 4 channels wide at the stem (stages of 16-128), necks and
    heads as thin: a cheap stand-in that keeps every index, scale and test setting of the
    config.
    """
    model = cfg.model
    if model.backbone.type == 'ViLReFViT':
        arch = VisionTransformer.arch_zoo[model.backbone.arch]
        model.backbone.arch = dict(arch, embed_dims=arch['embed_dims'] // SHRINK,
                                   feedforward_channels=arch['feedforward_channels'] // SHRINK)
    else:
        model.backbone.base_channels = 64 // SHRINK
    for part in ('neck', 'decode_head', 'auxiliary_head'):
        module = model.get(part) or {}
        for key in ('in_channels', 'out_channels', 'channels'):
            if key in module:
                value = module[key]
                module[key] = ([v // SHRINK for v in value] if isinstance(value, (list, tuple))
                               else value // SHRINK)
    return cfg


@pytest.fixture(autouse=True)
def mmseg_scope():
    with DefaultScope.overwrite_default_scope('mmseg'):
        yield


def test_expected_configs_exist():
    names = {c.stem for c in CONFIGS}
    for dataset in ('drive', 'chase-db1', 'stare', 'hrf', 'refuge'):
        assert f'upernet_vilref-vit-b16_4xb4-40kit_{dataset}-512x512' in names
    for dataset in ('drive', 'refuge'):
        assert f'upernet_vilref-rn50_4xb4-40kit_{dataset}-512x512' in names
    assert 'fcn_vilref-vit-b16_4xb4-40kit_drive-512x512' in names
    assert 'upernet_vilref-vit-l14_4xb4-40kit_drive-518x518' in names
    assert {c.stem.split('_')[-1].rsplit('-', 1)[0] for c in SYNTHETIC_CONFIGS} == {
        'synthetic-vessels', 'synthetic-odoc'}


@pytest.mark.parametrize('path', CONFIGS, ids=config_id)
def test_config_conventions(path):
    match = NAME.match(path.stem)
    assert match, f'{path.name} does not follow mmseg naming'
    algorithm, backbone, _, batch, _, dataset, crop_h, crop_w = match.groups()
    cfg = Config.fromfile(path)

    assert cfg.default_scope == 'mmseg'
    assert cfg.custom_imports == dict(imports=['vilref_mm'], allow_failed_imports=False)
    assert tuple(cfg.crop_size) == (int(crop_h), int(crop_w))
    preprocessor = cfg.model.data_preprocessor
    assert preprocessor.type == 'SegDataPreProcessor'
    assert (preprocessor.mean, preprocessor.std) == (CLIP_MEAN, CLIP_STD)
    assert preprocessor.bgr_to_rgb and tuple(preprocessor.size) == tuple(cfg.crop_size)
    assert cfg.train_dataloader.batch_size == int(batch)
    assert cfg.train_cfg.type == 'IterBasedTrainLoop'
    for evaluator in (cfg.val_evaluator, cfg.test_evaluator):
        assert evaluator.type == 'PerClassIoUMetric'
        assert evaluator.iou_metrics == ['mDice', 'mIoU']

    # the training crop reaches the model, and the test setting fits the training crop
    crops = [t.crop_size for t in innermost_dataset_cfg(cfg.train_dataloader).pipeline
             if t.type == 'RandomCrop']
    assert [tuple(c) for c in crops] == [tuple(cfg.crop_size)]
    if cfg.model.test_cfg.mode == 'slide':
        assert tuple(cfg.model.test_cfg.crop_size) == tuple(cfg.crop_size)
        assert all(s < c for s, c in zip(cfg.model.test_cfg.stride, cfg.crop_size))

    # the dataset, and one output per class
    dataset_type = DATASETS_BY_NAME[dataset]
    num_classes = len(DATASETS.get(dataset_type).METAINFO['classes'])
    for loader in (cfg.train_dataloader, cfg.val_dataloader, cfg.test_dataloader):
        assert innermost_dataset_cfg(loader).type == dataset_type
    if path in SYNTHETIC_CONFIGS:  # the generator writes no test split: test on validation
        assert cfg.test_dataloader.dataset == cfg.val_dataloader.dataset
    assert cfg.model.decode_head.num_classes == num_classes
    assert cfg.model.auxiliary_head.num_classes == num_classes
    assert cfg.model.decode_head.type == ('UPerHead' if algorithm == 'upernet' else 'FCNHead')

    model_backbone = cfg.model.backbone
    if backbone.startswith('vit'):
        assert model_backbone.type == 'ViLReFViT'
        assert model_backbone.out_type == 'featmap'
        assert model_backbone.get('mask_ratio', 0) == 0
        assert all(c % model_backbone.patch_size == 0 for c in cfg.crop_size)
    else:
        assert model_backbone.type == 'ViLReFModifiedResNet'
        assert tuple(model_backbone.out_indices) == (0, 1, 2, 3)
    if backbone == 'vit-b16':
        assert model_backbone.arch == 'b' and model_backbone.patch_size == 16
        assert model_backbone.init_cfg.type == 'Pretrained'
        if algorithm == 'upernet':
            assert tuple(model_backbone.out_indices) == (3, 5, 7, 11)
            assert cfg.model.neck.type == 'MultiLevelNeck'
            assert cfg.model.neck.scales == [4, 2, 1, 0.5]
            assert cfg.model.auxiliary_head.type == 'FCNHead'
        assert cfg.optim_wrapper.constructor == 'BackboneLayerDecayOptimWrapperConstructor'
    if backbone == 'vit-l14':
        assert model_backbone.arch == 'l' and model_backbone.patch_size == 14
        assert model_backbone.init_cfg.type == 'Pretrained'
        # blocks 8, 12, 16 and 24 of 24, as ViT-B/16's 4, 6, 8 and 12 of 12
        assert tuple(model_backbone.out_indices) == (7, 11, 15, 23)
        assert cfg.model.neck.type == 'MultiLevelNeck'
        assert cfg.model.neck.scales == [4, 2, 1, 0.5]
        assert cfg.model.neck.in_channels == cfg.model.decode_head.in_channels == [1024] * 4
        assert cfg.model.auxiliary_head.in_channels == 1024
        assert cfg.optim_wrapper.constructor == 'BackboneLayerDecayOptimWrapperConstructor'


@pytest.mark.parametrize('path', [c for c in CONFIGS if c not in SYNTHETIC_CONFIGS],
                         ids=config_id)
def test_full_size_model_builds(path):
    cfg = Config.fromfile(path)
    model = revert_sync_batchnorm(MODELS.build(cfg.model))
    assert type(model.backbone).__name__ == cfg.model.backbone.type
    assert not any(isinstance(m, torch.nn.SyncBatchNorm) for m in model.modules())
    assert model.decode_head.num_classes == cfg.model.decode_head.num_classes
    backbone_params = sum(p.numel() for p in model.backbone.parameters())
    # ViT-B/16, ViT-L/14, ModifiedResNet-50 with its attention pool
    expected = {'b': 86e6, 'l': 303e6}.get(cfg.model.backbone.get('arch'), 38.3e6)
    assert expected * 0.95 < backbone_params < expected * 1.1, backbone_params


def _predict(cfg: Config, image: np.ndarray, test_scale: tuple = None) -> np.ndarray:
    """Predict one BGR image with the config's test pipeline (``test_scale``: its Resize
    target instead of the config's) and test_cfg."""
    model = revert_sync_batchnorm(MODELS.build(cfg.model))
    model.init_weights()
    model.eval()
    pipeline = copy.deepcopy(innermost_dataset_cfg(cfg.test_dataloader).pipeline)
    for transform in pipeline:
        if transform.type == 'Resize' and test_scale is not None:
            transform.scale = test_scale
    model.cfg = Config(dict(test_pipeline=pipeline))
    with torch.no_grad():
        result = inference_model(model, image)
    seg_logits = result.seg_logits.data
    assert seg_logits.shape[0] == cfg.model.decode_head.num_classes
    assert torch.isfinite(seg_logits).all()
    prediction = result.pred_sem_seg.data[0].numpy()
    assert prediction.shape == image.shape[:2]
    assert prediction.min() >= 0 and prediction.max() < cfg.model.decode_head.num_classes
    return prediction


def _random_photo() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (150, 130, 3), dtype=np.uint8)


@pytest.mark.parametrize('path', CONFIGS, ids=config_id)
def test_predicts_full_size_mask(path):
    """The config's test pipeline and slide / whole inference on one photograph.

    Full-size configs run with every width divided by 16 (same blocks, indices and test
    settings) and the photograph resized to 1.5 times the crop (2 x 2 sliding windows)
    instead of the dataset's test scale (up to 3504 px for HRF: see the slow test below);
    the synthetic configs run as they are.
    """
    cfg = Config.fromfile(path)
    cfg.model.backbone.init_cfg = None  # random weights
    if path in SYNTHETIC_CONFIGS:
        _predict(cfg, _random_photo())
    else:
        _predict(shrink_model(cfg), _random_photo(),
                 test_scale=tuple(c * 3 // 2 for c in cfg.crop_size))


@pytest.mark.slow
@pytest.mark.parametrize('path', [c for c in CONFIGS if c not in SYNTHETIC_CONFIGS],
                         ids=config_id)
def test_predicts_at_dataset_test_scale(path):
    """As above at the dataset's own test scale (35 windows for HRF)."""
    cfg = shrink_model(Config.fromfile(path))
    cfg.model.backbone.init_cfg = None
    _predict(cfg, _random_photo())


@pytest.mark.slow
def test_vit_b16_predicts_drive_image():
    """The unreduced ViT-B/16 UPerNet on a DRIVE-sized photograph (a minute on 2 CPU cores)."""
    cfg = Config.fromfile(CONFIG_DIR / 'upernet_vilref-vit-b16_4xb4-40kit_drive-512x512.py')
    cfg.model.backbone.init_cfg = None
    image = np.random.default_rng(0).integers(0, 256, (584, 565, 3), dtype=np.uint8)
    _predict(cfg, image)


def test_vit_l14_backbone_loads_a_converted_patch14_release(tmp_path):
    """A release shaped as ViT-L/14 (patch 14, 24 blocks, 224 px) but 64 wide like the reduced
    config (16 heads of 4), converted for the backbone alone, loads into the ViT-L/14
    UPerNet's backbone through its init_cfg, the position embeddings resized from 16 x 16 to
    the 37 x 37 patches of a 518 px crop; the backbone returns its four levels."""
    cn_clip_model = pytest.importorskip('cn_clip.clip.model')
    cfg = shrink_model(
        Config.fromfile(CONFIG_DIR / 'upernet_vilref-vit-l14_4xb4-40kit_drive-518x518.py'))
    arch = cfg.model.backbone.arch
    text = json.loads((files('cn_clip') / 'clip' / 'model_configs' /
                       'RBT3-chinese.json').read_text())
    text.update(text_hidden_size=64, text_num_attention_heads=1, text_intermediate_size=128,
                text_num_hidden_layers=1)
    torch.manual_seed(0)
    release = cn_clip_model.CLIP(
        embed_dim=32, image_resolution=224, vision_layers=arch['num_layers'],
        vision_width=arch['embed_dims'], vision_patch_size=14,
        vision_head_width=arch['embed_dims'] // arch['num_heads'], **text)
    src, dst = tmp_path / 'release.pt', tmp_path / 'backbone.pth'
    torch.save({'state_dict': release.state_dict()}, src)
    converted = convert_checkpoint(str(src), str(dst), backbone_only=True,
                                   vision_head_width=arch['embed_dims'] // arch['num_heads'])
    assert converted.model_cfg['image_encoder']['arch'] == arch

    cfg.model.backbone.init_cfg.checkpoint = str(dst)
    backbone = MODELS.build(cfg.model.backbone)
    backbone.init_weights()
    state = backbone.state_dict()
    assert set(state) == set(converted.backbone_state_dict)
    for key, value in converted.backbone_state_dict.items():
        if key == 'pos_embed':
            assert value.shape[1] == 1 + 16 * 16 and backbone.patch_resolution == (37, 37)
            value = resize_pos_embed(value, (16, 16), (37, 37), 'bicubic', 1)
        torch.testing.assert_close(state[key], value, msg=key)
    with torch.no_grad():
        levels = backbone.eval()(torch.randn(1, 3, 70, 98))
    assert [tuple(level.shape) for level in levels] == [(1, 64, 5, 7)] * 4
