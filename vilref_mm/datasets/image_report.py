"""Image-report pairs for pre-training, read from a JSON Lines manifest."""
from functools import partial
from pathlib import Path
from typing import Callable, List, Optional, Sequence, Union

from mmengine.dataset import BaseDataset
from mmengine.fileio import get_file_backend
from mmpretrain.registry import DATASETS

from vilref_mm.labeling import load_lexicon
from .label_cache import report_labels
from .records import BadRecords, RecordError, label_vector, parse_manifest_line
from .samplers import seeded_random_state


class BaseImageReportDataset(BaseDataset):
    """What the image-report datasets share: classes, labels, bad records.

    A subclass's ``load_data_list`` turns each record into a data info with ``text``, ``eye``,
    ``gt_score`` (None when the record has no labels) and ``record`` (where it is, for error
    messages), hands each :class:`RecordError` to a :class:`BadRecords` (which raises or skips
    it), then calls :meth:`fill_labels`.

    An index with a seed (:class:`~vilref_mm.datasets.samplers.SampleIndex`, from
    ``SeededInfiniteSampler`` / ``SeededDefaultSampler``) transforms its sample with the
    generators seeded from it (:func:`~vilref_mm.datasets.samplers.seeded_random_state`).

    Args:
        ann_file: The manifest or LMDB folder.
        lexicon: Lexicon file of the report labeler (None: the default lexicon). Its classes
            are the dataset's unless ``metainfo`` sets ``classes``.
        label_cache: Where to cache computed labels: True next to ``ann_file``, a folder, or
            False for no cache.
        skip_bad_records: Skip bad records (logging how many and the first reasons) instead
            of raising.
        progress: Draw a progress bar while labelling (True), never (False) or when stderr is
            a terminal (None); only rank 0 draws.
        metainfo: Dataset meta; ``classes`` names the entries of the label vectors.
        **kwargs: Other arguments of :class:`mmengine.dataset.BaseDataset`.
    """

    def __init__(self,
                 ann_file: str,
                 lexicon: Optional[str] = None,
                 label_cache: Union[bool, str] = True,
                 skip_bad_records: bool = False,
                 progress: Optional[bool] = None,
                 metainfo: Optional[dict] = None,
                 **kwargs):
        self.lexicon = lexicon
        self.label_cache = label_cache
        self.skip_bad_records = skip_bad_records
        self.progress = progress
        metainfo = dict(metainfo or {})
        self._classes_given = 'classes' in metainfo
        metainfo['classes'] = tuple(metainfo.get('classes') or load_lexicon(lexicon).classes)
        super().__init__(ann_file=ann_file, metainfo=metainfo, **kwargs)

    @property
    def classes(self) -> Sequence[str]:
        """Names of the label vector's entries."""
        return self._metainfo['classes']

    def __getitem__(self, idx: int) -> dict:
        with seeded_random_state(getattr(idx, 'seed', None)):
            return super().__getitem__(int(idx))

    def fill_labels(self, data_list: List[dict]) -> None:
        """Label the records without labels (``gt_score`` None) from their ``text`` and ``eye``.

        Args:
            data_list: Data infos, changed in place.
        """
        pending = [info for info in data_list if info['gt_score'] is None]
        if not pending:
            return
        lexicon = load_lexicon(self.lexicon)
        if tuple(lexicon.classes) != tuple(self.classes):
            raise ValueError(
                f'{self.ann_file}: {len(pending)} records have no labels, and the lexicon '
                f'{lexicon.path} labels other classes ({", ".join(lexicon.classes)}) than the '
                f'dataset classes ({", ".join(self.classes)}); give every record labels, or pass '
                'the lexicon the classes belong to')
        stem = None
        if self.label_cache:
            stem = Path(self.ann_file)
            if not isinstance(self.label_cache, bool):
                Path(self.label_cache).mkdir(parents=True, exist_ok=True)
                stem = Path(self.label_cache) / stem.name
        labels = report_labels([(info['text'], info['eye']) for info in pending], lexicon,
                               stem, self.progress)
        for info, vector in zip(pending, labels):
            info['gt_score'] = vector


@DATASETS.register_module()
class ImageReportDataset(BaseImageReportDataset):
    """Image-report pairs listed in a JSON Lines manifest.

    One JSON object a line (blank lines are ignored)::

        {"image": "images/0001.jpg", "report": "右眼视盘边界清，C/D约0.7", "eye": "right",
         "labels": {"normal": 0.0, "glaucoma": 1.0, ...}}

    ``image`` is relative to ``data_prefix['img_path']`` (which is relative to ``data_root``)
    or absolute; ``eye`` ('left', 'right' or null) is optional; ``labels`` is optional, a
    mapping class -> value or a list in class order, values in [0, 1]. Records without labels
    are labelled once by :class:`~vilref_mm.labeling.ReportLabeler` in the main process (on
    rank 0 under ``torch.distributed``) and the labels cached (see ``label_cache``). Other
    fields are ignored.

    Each data info holds ``img_path``, ``text`` (the report), ``eye``, ``gt_score`` (float32
    label vector over ``metainfo['classes']``) and ``record`` (``MANIFEST:LINE``, which the
    loading transform quotes when the image is missing or corrupt).

    Args:
        ann_file: The manifest, relative to ``data_root`` or absolute.
        data_root: Root of the manifest and the images.
        pipeline: Transforms (see ``configs/_base_/datasets/image_report_pretrain.py``).
        lexicon: Lexicon file of the report labeler (None: the default lexicon).
        label_cache: Cache computed labels next to the manifest (True), in a folder (a path),
            or not (False).
        skip_bad_records: Skip malformed records, logging how many and the first reasons,
            instead of raising an error that names the file, the line and the field.
        progress: Draw a progress bar while labelling (True), never (False) or when stderr is
            a terminal (None); only rank 0 draws.
        **kwargs: Other arguments of :class:`mmengine.dataset.BaseDataset` (``metainfo``,
            ``data_prefix``, ``serialize_data``, ``lazy_init``, ``test_mode``, ...).

    Example:
        >>> dataset = ImageReportDataset('train.jsonl', data_root='data/synthetic_fundus')
        >>> dataset.get_data_info(0)['gt_score'].shape
        (25,)
    """

    def __init__(self,
                 ann_file: str,
                 data_root: str = '',
                 pipeline: Sequence = (),
                 lexicon: Optional[str] = None,
                 label_cache: Union[bool, str] = True,
                 skip_bad_records: bool = False,
                 progress: Optional[bool] = None,
                 **kwargs):
        super().__init__(ann_file, lexicon=lexicon, label_cache=label_cache,
                         skip_bad_records=skip_bad_records, progress=progress,
                         data_root=data_root, pipeline=list(pipeline), **kwargs)

    def load_data_list(self) -> List[dict]:
        """Read, check and label the manifest."""
        path = Path(self.ann_file)
        if not path.is_file():
            raise FileNotFoundError(f'manifest {path} does not exist; check ann_file and '
                                    'data_root (docs/data_preparation.md describes the format)')
        bad_records = BadRecords(str(path), self.skip_bad_records)
        image_root = self.data_prefix['img_path']
        image_path = (partial(get_file_backend(image_root, enable_singleton=True).join_path,
                              image_root) if image_root else lambda image: image)
        data_list = []
        with path.open('rb') as lines:
            for number, line in enumerate(lines, 1):
                try:
                    info = self._parse_line(line, f'{path}:{number}', image_path)
                except RecordError as error:
                    bad_records(error)
                    continue
                if info is not None:
                    data_list.append(info)
        bad_records.log_summary(len(data_list))
        self.fill_labels(data_list)
        return data_list

    def _parse_line(self, line: bytes, where: str,
                    image_path: Callable[[str], str]) -> Optional[dict]:
        """The data info of one manifest line (None for a blank line).

        ``image_path`` turns the ``image`` field into the image's path.
        """
        record = parse_manifest_line(line, where)
        if record is None:
            return None
        labels = record.get('labels')
        return dict(
            img_path=image_path(record['image']),
            text=record['report'],
            eye=record.get('eye'),
            gt_score=None if labels is None else label_vector(labels, self.classes, where,
                                                               'labels'),
            record=where)
