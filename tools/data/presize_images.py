"""Copy the images of a JSON Lines manifest with their longer side at most N pixels.

Images larger than N are re-encoded as JPEGs (``.jpg``) of at most N pixels, aspect kept
(``vilref_mm.datasets.presize.presize_image``); smaller ones are copied byte for byte. The
copies keep their paths relative to the data root under OUT_DIR (an absolute path outside it
is kept whole below OUT_DIR), and OUT_DIR/MANIFEST_NAME lists the records, unchanged but for
``image``, which points at the copy (relative to OUT_DIR: use ``data_root=OUT_DIR``). Every
file is written to a temporary beside it and renamed when complete; the manifest is written
last, so a killed run leaves no manifest that names a missing or half-written image.

    python tools/data/presize_images.py MANIFEST OUT_DIR --max-size N [--quality Q]
        [--data-root DIR] [--skip-bad-records] [--overwrite]
"""
import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

from vilref_mm.datasets.presize import DEFAULT_QUALITY, check_presize_options, read_image_file
from vilref_mm.datasets.records import BadRecords, RecordError, parse_manifest_line
from vilref_mm.utils.fileio import atomic_open, write_text_atomic


def copy_name(source: str, data_root: str, resized: bool) -> Path:
    """Where below OUT_DIR the copy of ``source`` goes: its path relative to ``data_root``,
    or its absolute path without the root; ``.jpg`` when ``resized``."""
    relative = os.path.relpath(source, data_root)
    outside = relative == os.pardir or relative.startswith(os.pardir + os.sep)
    name = Path(source.lstrip(os.sep) if outside else relative)
    return name.with_suffix('.jpg') if resized and name.suffix.lower() not in (
        '.jpg', '.jpeg') else name


def presize_manifest(manifest: Path, out_dir: Path, data_root: Path, max_size: int,
                     quality: int, skip_bad_records: bool) -> Dict[str, int]:
    """Write the copies and OUT_DIR/MANIFEST_NAME; return counts of records and images."""
    if not manifest.is_file():
        raise FileNotFoundError(f'{manifest}: no such file; pass the JSON Lines manifest')
    bad_records = BadRecords(str(manifest), skip_bad_records)
    root = os.path.abspath(data_root)
    records: List[Tuple[str, dict, str]] = []  # (where, record, image path)
    with manifest.open('rb') as manifest_lines:
        for number, line in enumerate(manifest_lines, 1):
            where = f'{manifest}:{number}'
            try:
                record = parse_manifest_line(line, where)
            except RecordError as error:
                bad_records(error)
                continue
            if record is not None:
                records.append((where, record, os.path.abspath(os.path.join(root,
                                                                            record['image']))))
    used_by = {source: where for where, _, source in reversed(records)}  # the first record
    copies: Dict[str, str] = {}  # source -> copy name (relative to out_dir)
    sources: Dict[str, str] = {}  # copy name -> source
    lines: List[str] = []
    num_resized = 0
    for where, record, source in records:
        try:
            if source not in copies:
                data, resized = read_image_file(source, where, max_size, quality)
                name = copy_name(source, root, resized).as_posix()
                target = os.path.abspath(out_dir / name)
                if name in sources:
                    raise RecordError(where, 'image', f'the copy of {source} would be {target}, '
                                      f'as is that of {sources[name]}; rename one of them')
                if target in used_by:
                    raise RecordError(where, 'image', f'the copy of {source} would replace '
                                      f'{target}, the image of {used_by[target]}; choose an '
                                      'OUT_DIR outside the data root')
                with atomic_open(target) as file:
                    file.write(data)
                sources[name], copies[source] = source, name
                num_resized += resized
        except RecordError as error:
            bad_records(error)
            continue
        record['image'] = copies[source]
        lines.append(json.dumps(record, ensure_ascii=False) + '\n')
    bad_records.log_summary(len(lines))
    write_text_atomic(out_dir / manifest.name, lines)
    return dict(num_records=len(lines), num_images=len(copies), num_resized=num_resized,
                num_skipped=len(bad_records.errors))


def main(argv: Optional[Sequence[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('manifest', type=Path, help='JSON Lines manifest (image, report, ...)')
    parser.add_argument('out_dir', type=Path, help='folder for the copies and the new manifest')
    parser.add_argument('--max-size', type=int, required=True,
                        help='longest image side in pixels (e.g. 512 for a 224 px model)')
    parser.add_argument('--quality', type=int, default=DEFAULT_QUALITY,
                        help='JPEG quality of the re-encoded images (default: %(default)s)')
    parser.add_argument('--data-root', type=Path,
                        help="folder the image paths are relative to (default: the manifest's)")
    parser.add_argument('--skip-bad-records', action='store_true',
                        help='leave out malformed records and missing or unreadable images')
    parser.add_argument('--overwrite', action='store_true',
                        help='replace an existing OUT_DIR/MANIFEST_NAME')
    args = parser.parse_args(argv)
    try:
        check_presize_options(args.max_size, args.quality)
    except ValueError as error:
        parser.error(str(error))
    out_manifest = args.out_dir / args.manifest.name
    if out_manifest.exists() and not args.overwrite:
        sys.exit(f'error: {out_manifest} exists; remove it or replace it (--overwrite)')

    start = time.perf_counter()
    try:
        summary = presize_manifest(args.manifest, args.out_dir,
                                   args.data_root or args.manifest.parent, args.max_size,
                                   args.quality, args.skip_bad_records)
    except (OSError, RecordError, ValueError) as error:
        sys.exit(f'error: {error}')
    print(f'wrote {summary["num_images"]:,} images ({summary["num_resized"]:,} re-encoded to at '
          f'most {args.max_size} px, the others copied) and {out_manifest} '
          f'({summary["num_records"]:,} records, {summary["num_skipped"]:,} skipped) in '
          f'{time.perf_counter() - start:.1f} s')


if __name__ == '__main__':
    main()
