"""Fixtures of the segmentation tests."""
from pathlib import Path

import pytest

import vilref_mm  # noqa: F401  registers the backbones in mmseg's MODELS
from vilref_mm.datasets.synthetic import generate_synthetic_fundus


@pytest.fixture(scope='session')
def synthetic_fundus(tmp_path_factory) -> Path:
    """8 training and 2 validation images of 256 px, in the vessels/ and odoc/ layouts."""
    root = tmp_path_factory.mktemp('synthetic_fundus')
    generate_synthetic_fundus(root, num_train=8, num_val=2, num_test=1, size=256, seed=3)
    return root
