"""The model zoo: model-index.yml, the metafiles and README tables of tools/analysis/model_zoo.py,
and mmpretrain's get_model by config name."""
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from mmengine.config import Config
from mmpretrain.apis import ModelHub, get_model

from vilref_mm.utils.checkpoint import save_tensor_checkpoint
from vilref_mm.utils.model_zoo import register_model_zoo
from tool_modules import load_module

REPO = Path(__file__).resolve().parents[2]
DEMO = 'vilref_vit-tiny-p16_1xb32-450it_synthetic-112px'


model_zoo = load_module('tools/analysis/model_zoo.py')


def metafiles():
    index = yaml.safe_load((REPO / 'model-index.yml').read_text())
    return {path: yaml.safe_load((REPO / path).read_text()) for path in index['Import']}


def test_every_config_is_in_the_zoo_once_with_its_readme_table():
    listed = {}
    for path, meta in metafiles().items():
        folder = Path(path).parent.name
        collection = meta['Collections'][0]['Name']
        names = [model['Name'] for model in meta['Models']]
        assert names == [config.stem for config in model_zoo.folder_configs(folder)]
        for model in meta['Models']:
            assert model['In Collection'] == collection
            assert (REPO / model['Config']).is_file() and Path(model['Config']).stem == \
                model['Name']
            assert model['Metadata']['Parameters'] > 0 and model['Metadata']['FLOPs'] > 0
            listed[model['Name']] = path
        # The README table is the metafile's.
        readme = (REPO / path).with_name('README.md').read_text()
        assert model_zoo.readme_table(meta) in readme
    configs = [config for folder in model_zoo.COLLECTIONS
               for config in model_zoo.folder_configs(folder)]
    assert sorted(listed) == sorted(config.stem for config in configs)
    assert len(listed) == len(configs)  # names unique across folders


@pytest.mark.parametrize('name', [
    DEMO,
    'vilref_vit-b16_8xb32-20e_fundus-reports-224px',
    'linear-probe_vilref-vit-tiny-p16_1xb32-10e_synthetic-112px',
    'upernet_vilref-vit-mini-p16_1xb4-300it_synthetic-vessels-192x192',
])
def test_parameters_and_flops_are_measured_from_the_config(name):
    model = next(model for meta in metafiles().values() for model in meta['Models']
                 if model['Name'] == name)
    params, flops = model_zoo.measure(Config.fromfile(REPO / model['Config']))
    assert (model['Metadata']['Parameters'], model['Metadata']['FLOPs']) == (params, flops)


def test_measured_results_are_kept_when_the_metafile_is_written_again():
    meta = metafiles()['configs/vilref/metafile.yml']
    demo = next(model for model in meta['Models'] if model['Name'] == DEMO)
    assert demo['Results'][0]['Metrics']['AUROC (macro)'] > 80
    rewritten = model_zoo.metafile('vilref', meta, cache={
        repr((Config.fromfile(REPO / model['Config']).model.to_dict(), None)):
        (model['Metadata']['Parameters'], model['Metadata']['FLOPs'])
        for model in meta['Models']})
    assert rewritten == meta


def test_get_model_builds_a_zoo_config_by_name(tmp_path):
    names = register_model_zoo()
    assert DEMO in names and ModelHub.has(DEMO)
    assert register_model_zoo() == names  # once
    assert not any(name.startswith('upernet_') for name in names)  # mmseg's, not mmpretrain's
    weights = tmp_path / 'weights.pth'
    source = get_model(DEMO)
    with torch.no_grad():
        source.logit_scale.fill_(2.5)
    save_tensor_checkpoint(source.state_dict(), str(weights))
    model = get_model(DEMO, pretrained=str(weights))
    assert type(model).__name__ == 'ViLReF'
    assert model.logit_scale.item() == pytest.approx(2.5)
    for key, value in source.state_dict().items():
        assert torch.equal(model.state_dict()[key], value), key


def test_a_built_package_carries_the_zoo(tmp_path):
    """A wheel holds configs, tools and model-index.yml in vilref_mm/.mim (as OpenMMLab
    packages do), leaves no copy in the source tree, and, installed, builds a zoo model by
    name from its own configs."""
    subprocess.run([sys.executable, '-m', 'pip', 'wheel', '--no-deps', '--no-build-isolation',
                    '-q', str(REPO), '-w', str(tmp_path / 'wheel')], check=True, cwd=tmp_path)
    assert not (REPO / 'vilref_mm' / '.mim').exists()
    wheel, = (tmp_path / 'wheel').glob('vilref_mm-*.whl')
    subprocess.run([sys.executable, '-m', 'pip', 'install', '--no-deps', '-q', '--target',
                    str(tmp_path / 'site'), str(wheel)], check=True, cwd=tmp_path)
    mim = tmp_path / 'site' / 'vilref_mm' / '.mim'
    assert (mim / 'model-index.yml').is_file() and (mim / 'tools' / 'train.py').is_file()
    assert sorted(p.relative_to(mim) for p in (mim / 'configs').rglob('*.py')) == sorted(
        p.relative_to(REPO) for p in (REPO / 'configs').rglob('*.py'))
    script = ('import vilref_mm\n'
              'from mmpretrain.apis import get_model\n'
              f'model = get_model({DEMO!r})\n'
              'print(vilref_mm.__file__, model._config.filename, sep="\\n")\n')
    proc = subprocess.run([sys.executable, '-c', script], capture_output=True, text=True,
                          cwd=tmp_path,
                          env={**os.environ, 'PYTHONPATH': str(tmp_path / 'site')})
    assert proc.returncode == 0, proc.stderr[-3000:]
    package, config = proc.stdout.split()
    assert package == str(tmp_path / 'site' / 'vilref_mm' / '__init__.py')
    assert config == str(mim / 'configs' / 'vilref' / f'{DEMO}.py')
