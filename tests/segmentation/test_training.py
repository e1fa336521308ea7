"""A short CPU fine-tuning on synthetic vessels improves Dice (vilref_mm.apis.segmentation)."""
from pathlib import Path

import cv2
import numpy as np
import pytest

import vilref_mm.engine.optimizers  # noqa: F401  (until vilref_mm.engine imports it)
from vilref_mm.apis.segmentation import finetune_segmentation
from vilref_mm.utils.checkpoint import load_checkpoint_file

CONFIG = (Path(__file__).resolve().parents[2] / 'configs' / 'segmentation' /
          'upernet_vilref-vit-mini-p16_1xb4-300iter_synthetic-vessels-256x256.py')
ITERS = 40
# The demo config, two images a batch, loading in the main process.
SMALL = {
    'train_dataloader.batch_size': 2,
    'train_dataloader.num_workers': 0,
    'train_dataloader.persistent_workers': False,
    'val_dataloader.num_workers': 0,
}


def test_finetuning_improves_vessel_dice(tmp_path, synthetic_fundus):
    data_root = str(synthetic_fundus / 'vessels')
    initial = finetune_segmentation(str(CONFIG), data_root, str(tmp_path / 'initial'),
                                    max_iters=1, cfg_options=SMALL)
    trained = finetune_segmentation(str(CONFIG), data_root, str(tmp_path / 'trained'),
                                    max_iters=ITERS, cfg_options=SMALL)

    assert set(trained['Dice']) == {'background', 'vessel'}
    assert 0 <= trained['mDice'] <= 1 and trained['iters'] == ITERS
    assert trained['mDice'] == pytest.approx(np.mean(list(trained['Dice'].values())))
    assert trained['Dice']['vessel'] > initial['Dice']['vessel'] + 0.05, (initial, trained)
    assert trained['mIoU'] > initial['mIoU']

    assert Path(trained['checkpoint']).name == f'iter_{ITERS}.pth'
    checkpoint = load_checkpoint_file(trained['checkpoint'])
    assert any(key.startswith('backbone.layers.3.') for key in checkpoint['state_dict'])

    # the overlay: the first validation photograph, painted where vessels are predicted
    photo = cv2.imread(str(min((synthetic_fundus / 'vessels/images/validation').glob('*.png'))))
    overlay = cv2.imread(trained['overlay'])
    assert overlay.shape == photo.shape
    changed = (overlay != photo).any(axis=2).mean()
    assert 0.02 < changed < 0.6, changed
