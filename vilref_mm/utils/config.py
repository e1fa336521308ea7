"""Helpers for reading MMEngine configs."""
from typing import Mapping

from mmengine.config import ConfigDict


def innermost_dataset_cfg(dataloader_cfg: Mapping) -> ConfigDict:
    """The dataset config of a dataloader config, inside dataset wrappers (``RepeatDataset``)."""
    dataset = dataloader_cfg['dataset']
    while 'dataset' in dataset:
        dataset = dataset['dataset']
    return dataset
