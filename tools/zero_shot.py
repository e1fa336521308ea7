"""Zero-shot findings of fundus photographs with a ViLReF checkpoint (docs/zero_shot.md).

Prints, per image, its classes ranked by score, and with --out writes the scores as JSON
(``{"mode", "classes", "images": [{"file", "scores": {class: score}}], "failed": [{"file",
"error"}]}``); with --show-dir draws each image's ranking on it. Images that cannot be read are
reported (file and reason) and the others scored; the exit status is then 1.

Examples::

    # the default label set (prompts_zh.yaml), or the classes of a zero-shot config
    python tools/zero_shot.py configs/zero_shot/vilref_vit-b16_zero-shot_rfmid-224px.py \
        checkpoints/vilref_vitb16.pth photo.jpg photos/ --out scores.json --show-dir vis/
    # chosen label keys, own prompts, or free Chinese texts (softmax over the texts)
    python tools/zero_shot.py CONFIG CKPT photo.jpg --classes normal glaucoma drusen
    python tools/zero_shot.py CONFIG CKPT photo.jpg --prompts my_prompts.yaml
    python tools/zero_shot.py CONFIG CKPT photo.jpg --texts 视盘水肿 正常眼底
    # a checkpoint your own training wrote (e.g. the demo's)
    python tools/zero_shot.py work_dirs/demo/pretrain/*.py \
        $(cat work_dirs/demo/pretrain/last_checkpoint) photo.jpg
"""
import argparse
import json
import sys
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
from mmengine.config import DictAction

from vilref_mm.apis import ZeroShotInferencer
from vilref_mm.apis.base import Failed, progress_bar, show_progress
from vilref_mm.evaluation.zero_shot import PromptError, load_prompt_file, resolve_class_names
from vilref_mm.utils.fileio import write_text_atomic


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Score fundus photographs against Chinese prompts with ViLReF')
    parser.add_argument('config', help='a ViLReF config (configs/zero_shot, configs/vilref)')
    parser.add_argument('checkpoint', help='converted release or own training checkpoint')
    parser.add_argument('images', nargs='+', help='image files and/or folders of images')
    parser.add_argument('--classes', nargs='+', metavar='KEY',
                        help='label keys to score (of --prompts, else of the default prompt '
                        'file); default: the config\'s zero-shot classes, else all defaults')
    parser.add_argument('--prompts', metavar='FILE',
                        help='prompt YAML file with templates and/or class_names')
    parser.add_argument('--texts', nargs='+', metavar='TEXT',
                        help='free Chinese texts to score instead of classes')
    parser.add_argument('--mode', choices=['multilabel', 'multiclass'],
                        help='independent probabilities per class, or a softmax over them '
                        '(default: the config\'s; multiclass for --texts)')
    parser.add_argument('--topk', type=int, default=5,
                        help='classes printed and drawn per image (0: all); the JSON has all')
    parser.add_argument('--out', metavar='JSON', help='write the scores to this file')
    parser.add_argument('--show-dir', metavar='DIR',
                        help='write each image with its --topk classes and scores drawn on '
                        'it to DIR (photo.jpg -> DIR/photo.png)')
    parser.add_argument('--batch-size', type=int, default=32)
    parser.add_argument('--device', default='cpu', help="e.g. 'cpu' or 'cuda:0'")
    parser.add_argument('--progress', action=argparse.BooleanOptionalAction,
                        help='draw a progress bar on stdout (default: when it is a terminal)')
    parser.add_argument('--trust-checkpoint', action='store_true',
                        help='unpickle the checkpoint in full if it needs Python objects '
                        'besides tensors (only for files whose origin you know; '
                        'docs/security.md)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config entries')
    args = parser.parse_args(argv)
    if args.texts and (args.classes or args.prompts):
        parser.error('--texts replaces --classes and --prompts; give one or the other')
    return args


def select_prompts(keys: Optional[Sequence[str]] = None,
                   prompt_file: Optional[str] = None
                   ) -> Tuple[Optional[Dict[str, List[str]]], Optional[List[str]]]:
    """Class names and templates from --classes and/or --prompts.

    Args:
        keys: Label keys to score, from the prompt file's ``class_names`` or, when it has
            none (or none is given), from the default prompt file. None: every class of the
            prompt file, or the model's classes.
        prompt_file: A prompt YAML file (``templates`` and/or ``class_names``).

    Returns:
        tuple: ``class_names`` (None: the model's) and ``templates`` (None: the model's).
    """
    prompts = load_prompt_file(prompt_file) if prompt_file is not None else {}
    available = prompts.get('class_names')
    if keys is None:
        class_names = available
    elif available is None:
        class_names = resolve_class_names(list(keys))
    else:
        unknown = [key for key in keys if key not in available]
        if unknown:
            raise PromptError(f'{prompt_file}: class_names has no {unknown}; its classes are '
                              f'{", ".join(available)}')
        class_names = {key: available[key] for key in keys}
    return class_names, prompts.get('templates')


def format_ranking(results: Sequence[dict], classes: Sequence[str], mode: str,
                   topk: Optional[int] = 5) -> str:
    """A table per image of its classes, highest score first (the ``topk`` first)."""
    width = max(len('class'), *(len(name) for name in classes))
    what = ('probability of each finding (multi-label)' if mode == 'multilabel' else
            'probability over the classes (multi-class)')
    lines = []
    for result in results:
        scores = result['pred_scores']
        lines += ['', f'{result["img_path"]}  [{what}]', f'  rank  {"class":<{width}}  score']
        lines += [f'  {rank:>4}  {classes[index]:<{width}}  {scores[index]:.4f}' for rank, index
                  in enumerate(np.argsort(-scores, kind='stable')[:topk], 1)]
    return '\n'.join(lines[1:])


def save_scores(path: Union[str, Path], results: Sequence[dict], classes: Sequence[str],
                mode: str, failed: Failed) -> None:
    """Write the scores as JSON (UTF-8, Chinese unescaped), atomically (the module docstring
    gives the layout)."""
    content = dict(mode=mode, classes=list(classes), images=[
        dict(file=result['img_path'], scores=dict(zip(classes, result['pred_scores'].tolist())))
        for result in results], failed=[dict(file=name, error=reason) for name, reason in failed])
    write_text_atomic(path, [json.dumps(content, ensure_ascii=False, indent=2) + '\n'])


def main(argv=None) -> int:
    args = parse_args(argv)
    failed: Failed = []  # unreadable images: (name, reason)
    try:
        class_names, templates = select_prompts(args.classes, args.prompts)
        inferencer = ZeroShotInferencer(
            args.config, args.checkpoint, args.device, class_names=class_names,
            templates=templates, texts=args.texts, mode=args.mode,
            trusted=args.trust_checkpoint, cfg_options=args.cfg_options)
        with progress_bar(show_progress(args.progress)):
            results = inferencer(args.images, batch_size=args.batch_size, failed=failed,
                                 show_dir=args.show_dir, topk=args.topk or None)
    except (FileNotFoundError, RuntimeError, ValueError) as error:  # prompts, images, weights
        print(f'error: {error}', file=sys.stderr)
        return 1
    classes, mode = inferencer.classes, inferencer.mode
    print(format_ranking(results, classes, mode, args.topk or None))
    if args.out:
        save_scores(args.out, results, classes, mode, failed)
        print(f'\nwrote the scores of {len(results)} image{"s" * (len(results) != 1)} to '
              f'{args.out}')
    if args.show_dir:
        print(f'drew the rankings on the images in {args.show_dir}')
    for name, reason in failed:
        print(f'error: {name}: {reason}', file=sys.stderr)
    if failed:
        print(f'error: {len(failed)} of {len(failed) + len(results)} images could not be read '
              'and have no scores', file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
