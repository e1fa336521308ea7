"""Image-report pairs in the LMDB layout of the ViLReF / Chinese-CLIP releases.

A dataset folder holds two LMDB environments (``cn_clip/preprocess/build_lmdb_dataset.py``)::

    DIR/pairs   b'0', b'1', ... -> pickle of (image_id, text_id, text[, label])
                b'num_samples'  -> number of pairs, as decimal text
    DIR/imgs    str(image_id)   -> url-safe base64 of the encoded image file
                b'num_images'   -> number of images, as decimal text

Chinese-CLIP's pairs are 3-tuples; ViLReF's add the label vector (a list of numbers). The
folders :func:`write_image_report_lmdb` writes (``tools/data/build_lmdb.py``) also store
``b'classes'`` in ``pairs``: the JSON list of the label classes.

The pairs are pickles, the release's format: an LMDB is trusted data, like a checkpoint. They
are read with an unpickler that builds only plain values and numpy arrays, so a foreign object
in a pair is refused rather than constructed.
"""
import base64
import binascii
import io
import json
import math
import os
import pickle
import secrets
import shutil
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

import lmdb
from mmengine.logging import MMLogger
from mmpretrain.registry import DATASETS

from vilref_mm.utils.fileio import fsync_folder, remove_stale_temporaries, temporary_prefix

from .image_report import BaseImageReportDataset, ImageReportDataset
from .presize import DEFAULT_QUALITY, read_image_file
from .progress import track_progress
from .records import BadRecords, RecordError, check_text, label_vector

#: Write transactions commit after this many puts (LMDB keeps a transaction's pages in memory).
_COMMIT_EVERY = 1000
# Globals a pair pickle may name: numpy arrays and scalars (numpy 1 and 2 module names).
_PAIR_GLOBALS = frozenset(
    (module, name) for module in ('numpy.core.multiarray', 'numpy._core.multiarray')
    for name in ('_reconstruct', 'scalar')) | {('numpy', 'ndarray'), ('numpy', 'dtype'),
                                               ('_codecs', 'encode')}
# Read-only environments by (path, process, inode of data.mdb): opened on first use in each
# worker.
_ENVIRONMENTS: Dict[Tuple[str, int, int], lmdb.Environment] = {}


class _PairUnpickler(pickle.Unpickler):
    """Unpickles plain values and numpy arrays only."""

    def find_class(self, module: str, name: str):
        if (module, name) not in _PAIR_GLOBALS:
            raise pickle.UnpicklingError(
                f'it names {module}.{name}; a pair may hold only plain values and numpy arrays')
        return super().find_class(module, name)


def open_readonly(path: Union[str, Path]) -> lmdb.Environment:
    """The read-only LMDB environment at ``path``, opened once per process and file.

    The environment is never pickled: a dataloader worker opens its own on first access. A
    folder rebuilt in place (a new ``data.mdb``) is opened anew.
    """
    try:
        inode = os.stat(Path(path, 'data.mdb')).st_ino
    except OSError as error:
        raise FileNotFoundError(
            f'{path} is not an LMDB environment (no data.mdb); an image-report LMDB folder '
            'holds pairs/ and imgs/ (build one with tools/data/build_lmdb.py)') from error
    key = (str(path), os.getpid(), inode)
    env = _ENVIRONMENTS.get(key)
    if env is None:
        env = _ENVIRONMENTS[key] = lmdb.open(str(path), readonly=True, lock=False,
                                             readahead=False, meminit=False, create=False)
    return env


@DATASETS.register_module()
class ImageReportLMDBDataset(BaseImageReportDataset):
    """Image-report pairs in the LMDB layout of the ViLReF / Chinese-CLIP releases.

    The pairs are read once, in the main process; the images are read per sample, in the
    workers, as the encoded bytes ``img_bytes`` that the loading transform
    (``LoadImageFromRecord``) decodes, so the pipeline is the same as for
    :class:`ImageReportDataset`. Pairs without labels (Chinese-CLIP's) are labelled with the
    report labeler and the labels cached next to the folder.

    Each data info holds ``image_id``, ``text``, ``eye`` (None: the layout has no eye),
    ``gt_score`` and ``record`` (``DIR/pairs #INDEX``); :meth:`prepare_data` adds the image
    as ``img_bytes``, so ``get_data_info`` reads no image.

    Args:
        ann_file: The LMDB folder (with ``pairs/`` and ``imgs/``), relative to ``data_root``
            or absolute.
        data_root: Root of ``ann_file``.
        pipeline: Transforms.
        strip_text_prefix: Characters dropped from the start of every text before it is
            tokenised. The ViLReF release's training code drops 3 (``text[3:]``, apparently an
            eye prefix such as "OD："); labels are computed from the whole text.
        lexicon, label_cache, skip_bad_records, progress: As for
            :class:`ImageReportDataset`.
        **kwargs: Other arguments of :class:`mmengine.dataset.BaseDataset`; ``metainfo``
            ``classes`` names the entries of the stored labels (default: the ``classes`` the
            folder stores, else the lexicon's).
    """

    def __init__(self,
                 ann_file: str,
                 data_root: str = '',
                 pipeline: Sequence = (),
                 strip_text_prefix: int = 0,
                 lexicon: Optional[str] = None,
                 label_cache: Union[bool, str] = True,
                 skip_bad_records: bool = False,
                 progress: Optional[bool] = None,
                 **kwargs):
        self.strip_text_prefix = strip_text_prefix
        super().__init__(ann_file, lexicon=lexicon, label_cache=label_cache,
                         skip_bad_records=skip_bad_records, progress=progress,
                         data_root=data_root, pipeline=list(pipeline), **kwargs)

    def load_data_list(self) -> List[dict]:
        """Read and check every pair."""
        root = Path(self.ann_file)
        pairs_env, images_env = open_readonly(root / 'pairs'), open_readonly(root / 'imgs')
        bad_records = BadRecords(f'{root}/pairs', self.skip_bad_records)
        data_list = []
        with pairs_env.begin() as pairs, images_env.begin(buffers=True) as images:
            num_samples = _count(pairs, b'num_samples', root / 'pairs')
            stored_classes = pairs.get(b'classes')
            if stored_classes is not None and not self._classes_given:
                self._metainfo['classes'] = tuple(json.loads(stored_classes))
            for index in range(num_samples):
                where = f'{root}/pairs #{index}'
                try:
                    info = self._parse_pair(pairs.get(str(index).encode()), where)
                    if images.get(info['image_id'].encode()) is None:
                        raise RecordError(where, 'image_id', f'{info["image_id"]!r} has no '
                                          f'image in {root}/imgs; rebuild the LMDB')
                except RecordError as error:
                    bad_records(error)
                    continue
                data_list.append(info)
        bad_records.log_summary(len(data_list))
        self.fill_labels(data_list)
        for info in data_list:
            info['text'] = info['text'][self.strip_text_prefix:]
        return data_list

    def prepare_data(self, idx: int) -> Optional[dict]:
        """Sample ``idx`` through the pipeline, its encoded image read as ``img_bytes``.

        The image is read here rather than in :meth:`get_data_info`, which thus stays cheap
        for samplers, ``get_cat_ids`` and dataset wrappers that only read labels.
        """
        info = self.get_data_info(idx)
        info['img_bytes'] = self._read_image(info)
        return self.pipeline(info)

    def _read_image(self, info: dict) -> bytes:
        """The encoded image file of a data info, from ``imgs/``."""
        images = Path(self.ann_file) / 'imgs'
        with open_readonly(images).begin() as txn:
            encoded = txn.get(info['image_id'].encode())
        if encoded is None:
            raise RecordError(info['record'], 'image_id', f'the image {info["image_id"]!r} is '
                              f'missing from {images} (was the folder changed after the dataset '
                              'was loaded?); rebuild the LMDB with tools/data/build_lmdb.py')
        try:
            return base64.urlsafe_b64decode(encoded)
        except binascii.Error as error:
            raise RecordError(info['record'], 'image_id', f'the image {info["image_id"]!r} in '
                              f'{images} is not url-safe base64 ({error}); rebuild the LMDB '
                              'with tools/data/build_lmdb.py') from error

    def _parse_pair(self, value: Optional[bytes], where: str) -> dict:
        """The data info of one stored pair."""
        if value is None:
            raise RecordError(where, None, 'is missing although num_samples counts it; '
                              'rebuild the LMDB')
        try:
            pair = _PairUnpickler(io.BytesIO(value)).load()
        except Exception as error:  # any failure of a corrupt pickle
            raise RecordError(where, None, f'cannot be unpickled ({error})') from error
        if not isinstance(pair, (tuple, list)) or len(pair) not in (3, 4):
            raise RecordError(where, None, 'must be (image_id, text_id, text) or (image_id, '
                              f'text_id, text, label), got {type(pair).__name__} of length '
                              f'{len(pair) if isinstance(pair, (tuple, list)) else "-"}')
        image_id, text = pair[0], check_text(pair[2], where, 'text')
        if not text[self.strip_text_prefix:].strip():
            raise RecordError(where, 'text', f'is empty after dropping {self.strip_text_prefix} '
                              'characters (strip_text_prefix)')
        return dict(image_id=str(image_id), text=text, eye=None, record=where,
                    gt_score=label_vector(pair[3], self.classes, where, 'label')
                    if len(pair) == 4 else None)


def _count(txn: lmdb.Transaction, key: bytes, path: Path) -> int:
    """The decimal count stored under ``key``."""
    value = txn.get(key)
    try:
        return int(bytes(value).decode('ascii'))
    except (TypeError, ValueError) as error:
        raise ValueError(f'{path}: the entry {key.decode()} (the number of entries) is missing '
                         'or not a number; this is not an image-report LMDB') from error


def write_image_report_lmdb(dataset: ImageReportDataset, out_dir: Union[str, Path],
                            overwrite: bool = False,
                            skip_bad_records: bool = False,
                            max_size: Optional[int] = None,
                            quality: int = DEFAULT_QUALITY,
                            progress: Optional[bool] = None) -> Dict[str, int]:
    """Write the pairs of a manifest in the release's LMDB layout (with labels and classes).

    Each distinct image file is stored once, as url-safe base64 of its bytes: the file's own
    bytes, or with ``max_size`` those of :func:`~vilref_mm.datasets.presize.presize_image`
    (an image with a longer side above ``max_size`` re-encoded as a smaller JPEG).
    The folder is built next to ``out_dir`` (as ``.NAME.PID.RANDOM``) and moved into place
    when complete; the temporary folders of ``out_dir`` that a killed build left are removed
    first, with a warning that names them.

    Args:
        dataset: The manifest's dataset; its records (``get_data_info``) give the images,
            reports and labels, its ``metainfo['classes']`` the stored ``b'classes'``.
        out_dir: The LMDB folder to write.
        overwrite: Replace an existing non-empty ``out_dir``.
        skip_bad_records: Skip records whose image is missing or unreadable instead of raising.
        max_size: Store images with their longer side at most this many pixels (None: every
            file as it is).
        quality: JPEG quality of the re-encoded images.
        progress: Draw a progress bar over the records (True), never (False) or when stderr is
            a terminal (None); only rank 0 draws.

    Returns:
        ``num_samples``, ``num_images``, ``num_resized`` (images re-encoded) and
        ``num_skipped``.
    """
    if not isinstance(dataset, ImageReportDataset):
        raise TypeError('write_image_report_lmdb: dataset must be an ImageReportDataset (the '
                        f'manifest to store), got {type(dataset).__name__}; build it with '
                        'ImageReportDataset(MANIFEST, ...)')
    out_dir = Path(out_dir)
    stale = remove_stale_temporaries(out_dir)
    if stale:
        MMLogger.get_current_instance().warning(
            f'{out_dir}: removed {len(stale)} stale temporary folder(s) of a killed run: '
            f'{", ".join(map(str, stale))}')
    if out_dir.exists() and not out_dir.is_dir():
        raise NotADirectoryError(f'{out_dir} is a file, not a folder; give the folder to '
                                 'write the LMDB in (a new one, or one to --overwrite)')
    if out_dir.exists() and any(out_dir.iterdir()) and not overwrite:
        raise FileExistsError(f'{out_dir} exists and is not empty; remove it or overwrite it '
                              '(--overwrite)')
    infos = [dataset.get_data_info(index) for index in range(len(dataset))]
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    bad_records = BadRecords(str(dataset.ann_file), skip_bad_records)
    temp_dir = out_dir.with_name(f'{temporary_prefix(out_dir)}{secrets.token_hex(4)}')
    temp_dir.mkdir()
    pairs = images = None
    try:
        map_size = _map_size(infos, max_size)
        pairs = _Writer(temp_dir / 'pairs', map_size)
        images = _Writer(temp_dir / 'imgs', map_size)
        image_ids: Dict[str, int] = {}
        num_resized = 0
        unreadable: Dict[str, RecordError] = {}  # image path -> the error of its first record
        for info in track_progress(infos, len(infos), progress):
            path = info['img_path']
            if path in unreadable:
                bad_records(RecordError(info['record'], 'image', f'uses {path}, which '
                                        f'cannot be read (see {unreadable[path].where})'))
                continue
            image_id = image_ids.get(path)
            if image_id is None:
                try:
                    encoded, resized = read_image_file(path, info['record'], max_size,
                                                       quality)
                except RecordError as error:
                    unreadable[path] = error
                    bad_records(error)
                    continue
                image_id = image_ids[path] = len(image_ids)
                num_resized += resized
                images.put(str(image_id), base64.urlsafe_b64encode(encoded))
            pair = (image_id, pairs.count, info['text'], info['gt_score'].tolist())
            pairs.put(str(pairs.count), pickle.dumps(pair))
        bad_records.log_summary(pairs.count)
        summary = dict(num_samples=pairs.count, num_images=images.count,
                       num_resized=num_resized, num_skipped=len(bad_records.errors))
        pairs.close({'num_samples': pairs.count,
                     'classes': json.dumps(list(dataset.metainfo['classes']))})
        images.close({'num_images': images.count})
        if out_dir.exists():
            old_dir = temp_dir.with_name(f'{temp_dir.name}.old')  # a temporary of out_dir too
            os.replace(out_dir, old_dir)
            os.replace(temp_dir, out_dir)
            shutil.rmtree(old_dir)
        else:
            os.replace(temp_dir, out_dir)
        fsync_folder(out_dir.parent)
    except BaseException:
        for writer in (pairs, images):
            if writer is not None:
                writer.env.close()
        shutil.rmtree(temp_dir, ignore_errors=True)
        raise
    return summary


class _Writer:
    """Puts entries into a new LMDB environment, committing every ``_COMMIT_EVERY``."""

    def __init__(self, path: Path, map_size: int):
        self.env = lmdb.open(str(path), map_size=map_size, subdir=True)
        self.txn = self.env.begin(write=True)
        self.count = 0

    def put(self, key: str, value: bytes) -> None:
        self.txn.put(key.encode(), value)
        self.count += 1
        if self.count % _COMMIT_EVERY == 0:
            self.txn.commit()
            self.txn = self.env.begin(write=True)

    def close(self, extra: Dict[str, object]) -> None:
        """Store ``extra`` (key -> value as text), commit and close."""
        for key, value in extra.items():
            self.txn.put(key.encode(), str(value).encode())
        self.txn.commit()
        self.env.close()


def _map_size(infos: Sequence[dict], max_size: Optional[int]) -> int:
    """An upper bound of the size of both environments: base64 images, pickled pairs, slack.

    A re-encoded image (``max_size``) takes less than its raw pixels, 3 bytes each.
    """
    shrunk_bytes = 0 if max_size is None else 3 * max_size**2
    image_bytes = sum(max(os.path.getsize(path), shrunk_bytes)
                      for path in {info['img_path'] for info in infos} if os.path.isfile(path))
    text_bytes = sum(len(info['text'].encode()) + 16 * len(info['gt_score']) for info in infos)
    return 2 * math.ceil(image_bytes * 4 / 3 + text_bytes) + 4096 * len(infos) + (64 << 20)

