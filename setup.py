"""Packaging for vilref_mm, the OpenMMLab plugin for ViLReF."""
import re
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


setup(
    name='vilref_mm',
    version=read_version(),
    description='ViLReF: a Chinese vision-language retinal foundation model, as an OpenMMLab plugin',
    long_description=(ROOT / 'README.md').read_text(encoding='utf-8'),
    long_description_content_type='text/markdown',
    license='Apache-2.0',
    python_requires='>=3.9',
    packages=find_packages(exclude=('tests', 'tests.*', 'configs', 'tools')),
    package_data={'vilref_mm': ['labeling/*.yaml', 'evaluation/*.yaml']},
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
