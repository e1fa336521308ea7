"""Fixtures of the inference API tests: a tiny random ViLReF saved as a checkpoint, and images."""
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from vilref_mm.apis import init_model

ROOT = Path(__file__).resolve().parents[2]
TINY_CONFIG = ROOT / 'tests/data/configs/tiny_vilref.py'


@pytest.fixture(scope='session')
def tiny_config() -> str:
    """A tiny ViLReF config: 32 px ViT 32 wide, one BERT layer, 16-d embeddings."""
    return str(TINY_CONFIG)


@pytest.fixture(scope='session')
def tiny_checkpoint(tmp_path_factory) -> Path:
    """The random weights of the tiny ViLReF (tests/data/configs/tiny_vilref.py), saved as
    tensors only, as a converted release is."""
    torch.manual_seed(0)
    model = init_model(TINY_CONFIG)
    path = tmp_path_factory.mktemp('tiny_vilref') / 'tiny_vilref.pth'
    torch.save({'state_dict': model.state_dict()}, path)
    return path


@pytest.fixture(scope='session')
def tiny_model(tiny_checkpoint):
    return init_model(TINY_CONFIG, str(tiny_checkpoint))


@pytest.fixture(scope='session')
def image_folder(tmp_path_factory) -> Path:
    """Five random colour images of different sizes (PNG and JPEG) and a text file."""
    folder = tmp_path_factory.mktemp('images')
    rng = np.random.default_rng(0)
    for index, (height, width) in enumerate([(40, 48), (32, 32), (64, 50), (36, 44),
                                             (48, 40)]):
        suffix = '.jpg' if index == 3 else '.png'
        image = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
        cv2.imwrite(str(folder / f'fundus_{index}{suffix}'), image)
    (folder / 'notes.txt').write_text('not an image\n')
    return folder
