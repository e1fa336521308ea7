"""Write the model zoo: ``configs/<folder>/metafile.yml`` (one model per config: collection,
architecture, parameters, FLOPs, results), the table in each folder's ``README.md`` and the
``model-index.yml`` that imports the metafiles (docs/model_zoo.md).

Parameters and FLOPs are measured on the built model (``mmengine.analysis``, one multiply-add
counted as one FLOP as in OpenMMLab's model zoos): a ViLReF model for one image-report pair at
its image size and context length (both towers with their projections), a classifier for one
image, a segmentor for one crop. The ``Results`` of a model are measured elsewhere (the demo,
the transfer and segmentation runs) and entered in its metafile by hand; they are kept when
the metafile is written again. Run it after adding or changing a config::

    python tools/analysis/model_zoo.py            # write the metafiles, README tables, index
    python tools/analysis/model_zoo.py --check    # exit 1 if any of them is out of date
"""
import argparse
import copy
import sys
import warnings
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import torch
import yaml
from mmengine.analysis import FlopAnalyzer
from mmengine.config import Config
from mmengine.registry import DefaultScope
from torch import nn

from vilref_mm.utils import write_text_atomic

REPO = Path(__file__).resolve().parents[2]
PAPER = dict(Title='ViLReF: An Expert Knowledge Enabled Vision-Language Retinal Foundation '
             'Model', URL='https://arxiv.org/abs/2408.10894')
#: Config folder -> its collection (one per folder).
COLLECTIONS = {
    'vilref': dict(Name='ViLReF', Task='Vision-Language Pre-training',
                   Code='vilref_mm/models/vilref.py'),
    'zero_shot': dict(Name='ViLReF Zero-shot', Task='Zero-shot Classification',
                      Code='vilref_mm/evaluation/zero_shot.py'),
    'classification': dict(Name='ViLReF Transfer', Task='Image Classification',
                           Code='vilref_mm/models/backbones/vit.py'),
    'segmentation': dict(Name='ViLReF Segmentation', Task='Semantic Segmentation',
                         Code='vilref_mm/models/backbones/vit.py'),
}
#: The documented entry points: they only inherit a model of the zoo.
ENTRY_POINTS = ('pretrain_vitb', 'pretrain_rn50')
TABLE_START = '<!-- model zoo: written by tools/analysis/model_zoo.py from metafile.yml -->'
TABLE_END = '<!-- end of model zoo -->'


def folder_configs(folder: str) -> List[Path]:
    """The configs of a folder (its sub-folders included), bases and entry points excluded."""
    return sorted(path for path in (REPO / 'configs' / folder).rglob('*.py')
                  if '_base_' not in path.parts and path.stem not in ENTRY_POINTS)


def describe_image_tower(cfg: dict) -> str:
    arch = cfg.get('arch')
    if cfg['type'] == 'ViLReFModifiedResNet':
        blocks = tuple(cfg.get('stage_blocks', (3, 4, 6, 3)))  # the backbone's default
        return 'ModifiedResNet-50' if blocks == (3, 4, 6, 3) else f'ModifiedResNet {blocks}'
    patch = cfg.get('patch_size', 16)
    if isinstance(arch, dict):
        return f'ViT ({arch["num_layers"]} blocks, {arch["embed_dims"]} wide)/{patch}'
    size = {'b': 'B', 'base': 'B', 'l': 'L', 'large': 'L', 'h': 'H', 'huge': 'H'}[arch]
    resolution = cfg.get('img_size', 224)
    return f'ViT-{size}/{patch}' + (f'@{resolution}' if resolution not in (224, 512) else '')


def describe_text_tower(cfg: dict) -> str:
    bert = cfg.get('bert_cfg') or {}
    layers, width = bert.get('num_hidden_layers', 12), bert.get('hidden_size', 768)
    released = {(12, 768): 'RoBERTa-wwm-ext-base-chinese', (3, 768): 'RBT3-chinese',
                (24, 1024): 'RoBERTa-wwm-ext-large-chinese'}  # Chinese-CLIP's text towers
    return released.get((layers, width), f'Chinese BERT ({layers} layers, {width} wide)')


def describe_loss(cfg: dict) -> str:
    if cfg['type'] == 'WeightedSimilarityCouplingLoss':
        if cfg.get('hard'):
            return 'Hard false-negative elimination'
        if cfg.get('gamma', 1.0) == 0:
            return 'CLIP InfoNCE'
        return 'Weighted Similarity Coupling Loss' + (
            ' (soft Jaccard)' if cfg.get('similarity') == 'soft_jaccard' else '') + (
            ' + label smoothing' if cfg.get('label_smoothing') else '')
    return {'LabelSoftTargetLoss': 'Label soft targets',
            'MomentumDistillationLoss': 'Momentum distillation'}.get(cfg['type'], cfg['type'])


def architecture(cfg: Config) -> List[str]:
    """The model's parts, in words."""
    model = cfg.model
    if model.type == 'ViLReF':
        parts = [describe_image_tower(model.image_encoder),
                 describe_text_tower(model.text_encoder), describe_loss(model.loss)]
        if model.get('queue_size', 0):
            parts += ['Momentum encoders', 'Memory queue']
        return parts
    parts = [describe_image_tower(model.backbone)]
    if model.type == 'ImageClassifier':
        return parts + [model.head.type]
    if model.get('neck'):
        parts.append(model.neck.type)
    return parts + [model.decode_head.type] + (
        [model.auxiliary_head.type] if model.get('auxiliary_head') else [])


class ImageReportPair(nn.Module):
    """ViLReF's inference for one image-report pair: both towers and their projections."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, image: torch.Tensor, text_ids: torch.Tensor):
        return self.model.encode_image(image), self.model.encode_text(text_ids)


def measure(cfg: Config) -> Tuple[int, int]:
    """Parameters (without the momentum towers, which only train) and FLOPs of one input."""
    model_cfg = copy.deepcopy(cfg.model)
    scope = cfg.get('default_scope', 'mmpretrain')
    if scope == 'mmseg':
        from mmseg.registry import MODELS
    else:
        from mmpretrain.registry import MODELS
    with DefaultScope.overwrite_default_scope(scope):
        model = MODELS.build(model_cfg).eval()
    params = sum(param.numel() for name, param in model.named_parameters()
                 if not name.startswith('momentum_'))
    if model_cfg.type == 'ViLReF':
        size = model_cfg.image_encoder.img_size
        length = model_cfg.tokenizer.context_length
        module, inputs = ImageReportPair(model), (torch.randn(1, 3, size, size),
                                                  torch.randint(1, 100, (1, length)))
    elif model_cfg.type == 'ImageClassifier':
        size = model_cfg.backbone.img_size
        module, inputs = model, (torch.randn(1, 3, size, size), )
    else:
        module, inputs = model, (torch.randn(1, 3, *cfg.crop_size), )
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter('ignore')
        analyzer = FlopAnalyzer(module, inputs)
        analyzer.unsupported_ops_warnings(False)
        analyzer.uncalled_modules_warnings(False)
        flops = analyzer.total()
    return params, flops


def model_entry(path: Path, collection: str, results: Optional[list],
                cache: Dict[str, Tuple[int, int]]) -> dict:
    cfg = Config.fromfile(path)
    key = repr((cfg.model.to_dict(), cfg.get('crop_size')))
    if key not in cache:
        cache[key] = measure(cfg)
    params, flops = cache[key]
    entry = {'Name': path.stem, 'In Collection': collection,
             'Config': str(path.relative_to(REPO)),
             'Metadata': {'Architecture': architecture(cfg), 'Parameters': params,
                          'FLOPs': flops}}
    if results:
        entry['Results'] = results
    return entry


def metafile(folder: str, old: Optional[dict], cache: Dict[str, Tuple[int, int]]) -> dict:
    """The metafile of a config folder; ``Results`` come from ``old`` by model name."""
    info = COLLECTIONS[folder]
    kept = {model['Name']: model.get('Results') for model in (old or {}).get('Models', [])}
    return {
        'Collections': [{
            'Name': info['Name'],
            'Metadata': {'Task': info['Task']},
            'Paper': PAPER,
            'README': f'configs/{folder}/README.md',
            'Code': {'URL': info['Code']},
        }],
        'Models': [model_entry(path, info['Name'], kept.get(path.stem), cache)
                   for path in folder_configs(folder)],
    }


def format_results(results: Optional[list]) -> str:
    if not results:
        return 'not measured'
    return '; '.join(f'{name} {value} ({result["Dataset"]})' for result in results
                     for name, value in result['Metrics'].items())


def readme_table(meta: dict) -> str:
    """The Markdown table of a metafile's models."""
    lines = [TABLE_START, '',
             '| config | architecture | params (M) | FLOPs (G) | results |',
             '|---|---|---|---|---|']
    folder = Path(meta['Collections'][0]['README']).parent
    for model in meta['Models']:
        data = model['Metadata']
        link = Path(model['Config']).relative_to(folder)
        lines.append(f'| [{model["Name"]}]({link}) | {", ".join(data["Architecture"])} | '
                     f'{data["Parameters"] / 1e6:.2f} | {data["FLOPs"] / 1e9:.2f} | '
                     f'{format_results(model.get("Results"))} |')
    return '\n'.join(lines + ['', TABLE_END])


def readme_text(folder: str, meta: dict, old: Optional[str]) -> str:
    """The folder's README with its table replaced (or a new README with the table)."""
    table = readme_table(meta)
    if old and TABLE_START in old and TABLE_END in old:
        head, rest = old.split(TABLE_START, 1)
        return head + table + rest.split(TABLE_END, 1)[1]
    info = COLLECTIONS[folder]
    return (f'# {info["Name"]}\n\n> [{PAPER["Title"]}]({PAPER["URL"]})\n\n'
            f'{info["Task"]} configs of vilref-mm (docs/model_zoo.md).\n\n{table}\n')


def dump_yaml(data: dict) -> str:
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=99)


def expected_files() -> Dict[Path, str]:
    """Every file of the zoo with the text it should have."""
    files, cache = {}, {}
    for folder in COLLECTIONS:
        meta_path = REPO / 'configs' / folder / 'metafile.yml'
        old = yaml.safe_load(meta_path.read_text(encoding='utf-8')) \
            if meta_path.is_file() else None
        meta = metafile(folder, old, cache)
        files[meta_path] = dump_yaml(meta)
        readme_path = meta_path.with_name('README.md')
        files[readme_path] = readme_text(
            folder, meta,
            readme_path.read_text(encoding='utf-8') if readme_path.is_file() else None)
    files[REPO / 'model-index.yml'] = dump_yaml(
        {'Import': [f'configs/{folder}/metafile.yml' for folder in COLLECTIONS]})
    return files


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--check', action='store_true',
                        help='only compare, exit 1 if a file is out of date')
    args = parser.parse_args(argv)
    stale = []
    for path, text in expected_files().items():
        current = path.read_text(encoding='utf-8') if path.is_file() else None
        if current == text:
            continue
        stale.append(path.relative_to(REPO))
        if not args.check:
            write_text_atomic(path, [text])
    verb = 'out of date' if args.check else 'written'
    print('\n'.join(f'{verb}: {path}' for path in stale) or 'the model zoo is up to date')
    return 1 if args.check and stale else 0


if __name__ == '__main__':
    sys.exit(main())
