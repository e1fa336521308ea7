"""Write a JSON Lines manifest of image-report pairs in the ViLReF / Chinese-CLIP LMDB layout.

OUT_DIR gets ``pairs/`` (pickled ``(image_id, text_id, report, labels)``, ``num_samples``,
``classes``) and ``imgs/`` (url-safe base64 of each image file, ``num_images``); see
docs/data_preparation.md. Records without ``labels`` are labelled with the report labeler
(the labels are cached next to the manifest). Read it with ``ImageReportLMDBDataset``.
With ``--max-size N`` images with a longer side above N are stored re-encoded as JPEGs of
at most N pixels (aspect kept); smaller ones are stored byte for byte. Progress bars of the
labelling and of the writing are drawn on stderr when it is a terminal (``--progress`` /
``--no-progress``).

    python tools/data/build_lmdb.py MANIFEST OUT_DIR [--data-root DIR] [--lexicon FILE]
        [--max-size N [--quality Q]] [--skip-bad-records] [--overwrite] [--no-progress]
"""
import argparse
import sys
import time
from pathlib import Path
from typing import Optional, Sequence

import lmdb

from vilref_mm.datasets import ImageReportDataset, RecordError, write_image_report_lmdb
from vilref_mm.datasets.presize import DEFAULT_QUALITY, check_presize_options
from vilref_mm.labeling import LexiconError


def main(argv: Optional[Sequence[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('manifest', type=Path, help='JSON Lines manifest (image, report, ...)')
    parser.add_argument('out_dir', type=Path, help='LMDB folder to write')
    parser.add_argument('--data-root', type=Path,
                        help="folder the image paths are relative to (default: the manifest's)")
    parser.add_argument('--lexicon', help='lexicon YAML file for records without labels '
                        '(default: the one shipped with vilref_mm)')
    parser.add_argument('--max-size', type=int,
                        help='store images with their longer side at most this many pixels, '
                        're-encoded as JPEG (e.g. 512 for a 224 px model; default: as they are)')
    parser.add_argument('--quality', type=int, default=DEFAULT_QUALITY,
                        help='JPEG quality of the re-encoded images (default: %(default)s)')
    parser.add_argument('--skip-bad-records', action='store_true',
                        help='skip malformed records and missing or unreadable images')
    parser.add_argument('--overwrite', action='store_true', help='replace an existing OUT_DIR')
    parser.add_argument('--progress', action=argparse.BooleanOptionalAction,
                        help='draw progress bars on stderr (default: when it is a terminal)')
    args = parser.parse_args(argv)
    if args.max_size is not None:
        try:
            check_presize_options(args.max_size, args.quality)
        except ValueError as error:
            parser.error(str(error))

    start = time.perf_counter()
    try:
        dataset = ImageReportDataset(
            str(args.manifest), data_prefix=dict(img_path=str(args.data_root or
                                                             args.manifest.parent)),
            lexicon=args.lexicon, skip_bad_records=args.skip_bad_records,
            progress=args.progress)
        summary = write_image_report_lmdb(dataset, args.out_dir, overwrite=args.overwrite,
                                          skip_bad_records=args.skip_bad_records,
                                          max_size=args.max_size, quality=args.quality,
                                          progress=args.progress)
    except (FileNotFoundError, FileExistsError, NotADirectoryError, LexiconError, RecordError,
            ValueError) as error:
        sys.exit(f'error: {error}')
    except lmdb.Error as error:
        sys.exit(f'error: cannot write the LMDB {args.out_dir} ({type(error).__name__}: '
                 f'{error}); check the free disk space and that the folder is writable')
    resized = (f', {summary["num_resized"]:,} re-encoded to at most {args.max_size} px'
               if args.max_size else '')
    print(f'wrote {summary["num_samples"]:,} pairs and {summary["num_images"]:,} images'
          f'{resized} ({summary["num_skipped"]:,} records skipped) to {args.out_dir} in '
          f'{time.perf_counter() - start:.1f} s')


if __name__ == '__main__':
    main()
