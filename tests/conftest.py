"""Suite-wide fixtures."""
from pathlib import Path

import numpy as np
import pytest
from mmengine.registry import DefaultScope
from PIL import Image


@pytest.fixture(autouse=True)
def mmpretrain_default_scope():
    """Run every test under mmpretrain's default scope and restore the scopes afterwards, so a
    test that sets another one (a runner of an mmseg config sets 'mmseg') cannot change where
    the following tests look up their modules."""
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        yield


@pytest.fixture(scope='session')
def folder_dataset(tmp_path_factory) -> Path:
    """A folder dataset for tests/data/configs/tiny_classifier.py: two classes ('dark',
    'bright') of four 32 px images that differ in brightness."""
    root = tmp_path_factory.mktemp('folder_dataset')
    rng = np.random.default_rng(0)
    for label, base in (('dark', 40), ('bright', 200)):
        (root / label).mkdir()
        for index in range(4):
            pixels = np.clip(base + rng.normal(0, 20, (32, 32, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(root / label / f'{index}.png')
    return root
