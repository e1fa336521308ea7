"""Extract ViLReF image or text features to a .npy file (docs/zero_shot.md).

Images (files and/or folders) give an (N, D) array and, next to it, a .txt listing the image
of each row; ``--text-file`` (one text a line) gives the text embeddings in its line order.
Images that cannot be read are reported (file and reason) and left out; the exit status is
then 1.

Examples::

    python tools/extract_features.py CONFIG CKPT photos/ --out feats.npy      # embeddings
    python tools/extract_features.py CONFIG CKPT photos/ --out enc.npy --feature encoder
    python tools/extract_features.py CONFIG CKPT --text-file findings.txt --out text.npy
"""
import argparse
import sys
from pathlib import Path
from typing import Optional, Sequence, Union

import numpy as np
import torch
from mmengine.config import DictAction

from vilref_mm.apis import ViLReFFeatureExtractor, collect_images, image_names
from vilref_mm.apis.base import Failed, progress_bar, show_progress
from vilref_mm.utils.fileio import atomic_open, write_text_atomic


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Extract ViLReF image or text features')
    parser.add_argument('config', help='a ViLReF config (configs/zero_shot, configs/vilref)')
    parser.add_argument('checkpoint', help='converted release or own training checkpoint')
    parser.add_argument('images', nargs='*', help='image files and/or folders of images')
    parser.add_argument('--text-file', metavar='FILE',
                        help='extract the embeddings of the texts in FILE (one a line) '
                        'instead of images')
    parser.add_argument('--out', required=True, metavar='NPY', help='output .npy file')
    parser.add_argument('--feature', choices=ViLReFFeatureExtractor.FEATURES,
                        default='embedding',
                        help='image features: the L2-normalised joint embedding (default) '
                        "or the image encoder's output before the projection")
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
    if bool(args.images) == bool(args.text_file):
        parser.error('give images or --text-file (one of them)')
    if not args.out.endswith('.npy'):
        parser.error(f'--out {args.out}: the file name must end in .npy')
    return args


def save_features(path: Union[str, Path], features: np.ndarray,
                  names: Optional[Sequence[str]] = None) -> None:
    """Write features to ``path`` (.npy) and, with ``names``, one name a line to the same
    path with the suffix .txt; both atomically."""
    path = Path(path)
    with atomic_open(path) as file:
        np.save(file, features)
    if names is not None:
        write_text_atomic(path.with_suffix('.txt'), [f'{name}\n' for name in names])


def main(argv=None) -> int:
    args = parse_args(argv)
    failed: Failed = []  # unreadable images: (name, reason)
    try:
        extractor = ViLReFFeatureExtractor(args.config, args.checkpoint, args.device,
                                           trusted=args.trust_checkpoint,
                                           cfg_options=args.cfg_options)
        if args.text_file:
            lines = Path(args.text_file).read_text(encoding='utf-8').splitlines()
            feats = extractor.extract_text([line.strip() for line in lines if line.strip()])
            names = None
        else:
            images = collect_images(args.images)
            with progress_bar(show_progress(args.progress)):
                feats = extractor(images, args.batch_size, args.feature, failed)
            if not feats:
                raise ValueError(f'none of the {len(images)} images could be read')
            unreadable = {name for name, _ in failed}
            names = [name for name in image_names(images) if name not in unreadable]
    except (FileNotFoundError, RuntimeError, ValueError) as error:  # inputs, weights
        print_unreadable(failed)  # when none of the images could be read
        print(f'error: {error}', file=sys.stderr)
        return 1
    features = torch.stack(feats).float().cpu().numpy()
    save_features(args.out, features, names)
    listing = f' and the images of its rows to {Path(args.out).with_suffix(".txt")}'
    print(f'wrote {features.shape[0]} x {features.shape[1]} features to {args.out}'
          f'{listing if names else ""}')
    if failed:
        print_unreadable(failed)
        print(f'error: {len(failed)} of {len(failed) + len(features)} images could not be '
              'read and have no features', file=sys.stderr)
        return 1
    return 0


def print_unreadable(failed: Failed) -> None:
    """Print each unreadable image and why to stderr."""
    for name, reason in failed:
        print(f'error: {name}: {reason}', file=sys.stderr)


if __name__ == '__main__':
    sys.exit(main())
