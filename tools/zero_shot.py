"""Zero-shot findings of fundus photographs with a ViLReF checkpoint (docs/zero_shot.md).

Prints, per image, its classes ranked by score, and with --out writes the scores as JSON
(``{"mode", "classes", "images": [{"file", "scores": {class: score}}], "failed": [{"file",
"error"}]}``). Images that cannot be read are reported (file and reason) and the others
scored; the exit status is then 1.

Examples::

    # the default label set (prompts_zh.yaml), or the classes of a zero-shot config
    python tools/zero_shot.py configs/zero_shot/vilref_vit-b16_zero-shot_rfmid-224px.py \
        checkpoints/vilref_vitb16.pth photo.jpg photos/ --out scores.json
    # chosen label keys, own prompts, or free Chinese texts (softmax over the texts)
    python tools/zero_shot.py CONFIG CKPT photo.jpg --classes normal glaucoma drusen
    python tools/zero_shot.py CONFIG CKPT photo.jpg --prompts my_prompts.yaml
    python tools/zero_shot.py CONFIG CKPT photo.jpg --texts 视盘水肿 正常眼底
    # a checkpoint your own training wrote (e.g. the demo's)
    python tools/zero_shot.py work_dirs/demo/pretrain/*.py \
        $(cat work_dirs/demo/pretrain/last_checkpoint) photo.jpg
"""
import argparse
import sys

from mmengine.config import DictAction

from vilref_mm.apis.inference import (format_ranking, init_model, select_prompts,
                                      zero_shot)


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
                        help='classes printed per image (0: all); the JSON has all')
    parser.add_argument('--out', metavar='JSON', help='write the scores to this file')
    parser.add_argument('--batch-size', type=int, default=32)
    parser.add_argument('--device', default='cpu', help="e.g. 'cpu' or 'cuda:0'")
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


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        class_names, templates = select_prompts(args.classes, args.prompts)
        model = init_model(args.config, args.checkpoint, args.device, args.cfg_options,
                           trusted=args.trust_checkpoint)
        result = zero_shot(model, args.images, class_names=class_names, templates=templates,
                           texts=args.texts, mode=args.mode, batch_size=args.batch_size,
                           skip_unreadable=True)
    except (FileNotFoundError, RuntimeError, ValueError) as error:  # prompts, images, weights
        print(f'error: {error}', file=sys.stderr)
        return 1
    print(format_ranking(result, args.topk or None))
    if args.out:
        result.save_json(args.out)
        count = len(result.images)
        print(f'\nwrote the scores of {count} image{"s" * (count != 1)} to {args.out}')
    for name, reason in result.failed:
        print(f'error: {name}: {reason}', file=sys.stderr)
    if result.failed:
        print(f'error: {len(result.failed)} of {len(result.failed) + len(result.images)} '
              'images could not be read and have no scores', file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
