"""The model zoo in mmpretrain's :class:`~mmpretrain.apis.ModelHub`: every pre-training,
zero-shot and transfer config by its name, so that ``mmpretrain.apis.get_model('<config name>',
pretrained='path.pth')`` builds it (docs/model_zoo.md)."""
from pathlib import Path
from typing import List, Optional

from mmengine.fileio import load
from mmpretrain.apis import ModelHub

PACKAGE = Path(__file__).resolve().parents[1]
#: Metafiles of models mmpretrain's ``get_model`` cannot build: the segmentors are mmseg's
#: (``mmseg.apis.init_model(config, checkpoint)``).
NOT_MMPRETRAIN = ('configs/segmentation/metafile.yml', )
_registered: List[str] = []


def model_index_file() -> Optional[Path]:
    """``model-index.yml`` of an installed package (``vilref_mm/.mim``) or of the source tree
    beside the package (an editable install); None when neither has one."""
    for root in (PACKAGE / '.mim', PACKAGE.parent):
        if (root / 'model-index.yml').is_file():
            return root / 'model-index.yml'
    return None


def register_model_zoo() -> List[str]:
    """Register the zoo's mmpretrain models with ``ModelHub`` (once; later calls do nothing).

    Returns:
        list[str]: The registered model names (empty without a ``model-index.yml``).
    """
    index = model_index_file()
    if _registered or index is None:
        return _registered
    for metafile in load(str(index))['Import']:
        if metafile in NOT_MMPRETRAIN:
            continue
        path = index.parent / metafile
        ModelHub.register_model_index(path, config_prefix=index.parent)
        _registered.extend(model['Name'] for model in load(str(path))['Models'])
    return _registered
