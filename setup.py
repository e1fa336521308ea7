"""Packaging for vilref_mm, the OpenMMLab plugin for ViLReF."""
import re
import shutil
import sys
from pathlib import Path

from setuptools import find_packages, setup

ROOT = Path(__file__).parent


def read_requirements(name: str) -> list:
    """Requirement lines of ``requirements/{name}``, without comments."""
    lines = (ROOT / 'requirements' / name).read_text(encoding='utf-8').splitlines()
    return [line.split('#')[0].strip() for line in lines if line.split('#')[0].strip()]


def read_version() -> str:
    text = (ROOT / 'vilref_mm' / 'version.py').read_text(encoding='utf-8')
    return re.search(r"__version__ = '([^']+)'", text).group(1)


#: What a built package carries in ``vilref_mm/.mim``, as OpenMMLab packages do: the configs
#: and the model index (the model zoo of ``mmpretrain.apis.get_model``) and the tools.
MIM_FILES = ('configs', 'tools', 'model-index.yml')
MIM = ROOT / 'vilref_mm' / '.mim'


def add_mim_extension() -> None:
    """Copy :data:`MIM_FILES` into ``vilref_mm/.mim`` when a wheel or sdist is built (an
    editable install finds them in the source tree)."""
    if not {'bdist_wheel', 'sdist', 'build', 'build_py'} & set(sys.argv[1:]):
        return
    shutil.rmtree(MIM, ignore_errors=True)
    MIM.mkdir()
    for name in MIM_FILES:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, MIM / name,
                            ignore=shutil.ignore_patterns('__pycache__', '*.pyc'))
        else:
            shutil.copy2(source, MIM / name)


add_mim_extension()
try:
    setup(
        name='vilref_mm',
        version=read_version(),
        description=('ViLReF: a Chinese vision-language retinal foundation model, as an '
                     'OpenMMLab plugin'),
        long_description=(ROOT / 'README.md').read_text(encoding='utf-8'),
        long_description_content_type='text/markdown',
        license='Apache-2.0',
        python_requires='>=3.9',
        packages=find_packages(exclude=('tests', 'tests.*', 'configs', 'tools')),
        package_data={'vilref_mm': ['labeling/*.yaml', 'evaluation/*.yaml', '.mim/**/*']},
        include_package_data=True,
        install_requires=read_requirements('runtime.txt'),
        extras_require={'tests': read_requirements('tests.txt')},
        classifiers=[
            'Programming Language :: Python :: 3',
            'Topic :: Scientific/Engineering :: Artificial Intelligence',
            'Topic :: Scientific/Engineering :: Medical Science Apps.',
        ],
        zip_safe=False,
    )
finally:  # no copy left to shadow the source tree of an editable install
    shutil.rmtree(MIM, ignore_errors=True)
