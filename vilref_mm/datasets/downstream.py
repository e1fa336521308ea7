"""Labelled fundus datasets for zero-shot and downstream evaluation (docs/zero_shot.md).

A generic CSV format and readers for the public layouts of RFMiD, ODIR-5K, REFUGE (glaucoma),
MESSIDOR and FIVES. Every data info has ``img_path`` and ``gt_label``; multi-label datasets
also give ``gt_score`` (C, ) float32 (``gt_label`` then lists the classes with score >= 0.5,
mmpretrain's multi-label convention), which ``PackInputs`` packs and the metrics prefer.
"""
import csv
import glob
import re
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
from mmengine.fileio import join_path
from mmengine.logging import MMLogger
from mmpretrain.datasets import BaseDataset
from mmpretrain.registry import DATASETS

from .records import RecordError

IMAGE_SUFFIXES = ('.jpg', '.jpeg', '.png', '.bmp', '.tif', '.tiff')

#: The 45 disease columns of RFMiD 1.0, in file order (after ``ID`` and ``Disease_Risk``).
RFMID_DISEASES = (
    'DR', 'ARMD', 'MH', 'DN', 'MYA', 'BRVO', 'TSLN', 'ERM', 'LS', 'MS', 'CSR', 'ODC', 'CRVO',
    'TV', 'AH', 'ODP', 'ODE', 'ST', 'AION', 'PT', 'RT', 'RS', 'CRS', 'EDN', 'RPEC', 'MHL', 'RP',
    'CWS', 'CB', 'ODPM', 'PRH', 'MNF', 'HR', 'CRAO', 'TD', 'CME', 'PTCR', 'CF', 'VH', 'MCA',
    'VS', 'BRAO', 'PLQ', 'HPED', 'CL')

#: ODIR-5K's patient-level classes: normal, diabetes, glaucoma, cataract, AMD, hypertension,
#: myopia, other.
ODIR_CLASSES = ('N', 'D', 'G', 'C', 'A', 'H', 'M', 'O')

#: ODIR diagnostic keywords that describe the photograph, not the eye (no label).
ODIR_NON_DIAGNOSTIC = ('lens dust', 'low image quality', 'image offset', 'no fundus image',
                       'optic disk photographically invisible', 'anterior segment image')

#: ODIR keyword fragments -> class; the first match wins, a diagnostic keyword matching
#: none of them is 'O' (other).
ODIR_KEYWORD_RULES = (
    ('normal fundus', 'N'),
    ('proliferative retinopathy', 'D'),  # mild/moderate/severe (non) proliferative
    ('diabetic', 'D'),
    ('glaucoma', 'G'),
    ('cataract', 'C'),
    ('age-related macular degeneration', 'A'),
    ('age related macular degeneration', 'A'),
    ('hypertensi', 'H'),
    ('myopi', 'M'),  # pathological myopia, myopia retinopathy, myopic maculopathy
)

#: MESSIDOR targets: column -> class keys (grade i is class i).
MESSIDOR_TARGETS = {
    'retinopathy': ('Retinopathy grade', ('grade_0', 'grade_1', 'grade_2', 'grade_3')),
    'macular_edema': ('Risk of macular edema', ('risk_0', 'risk_1', 'risk_2')),
}

#: FIVES file-name letters, in class order.
FIVES_LETTERS = {'N': 'normal', 'A': 'amd', 'D': 'diabetic_retinopathy', 'G': 'glaucoma'}


def read_table(path: str) -> Tuple[List[str], List[Tuple[str, Dict[str, str]]]]:
    """Read a CSV (or, with pandas installed, .xls/.xlsx) table of string cells.

    Blank rows are skipped; a row may leave trailing cells out (they are empty) but not have
    more non-empty cells than the header.

    Args:
        path: The table.

    Returns:
        tuple: The header (names stripped) and the rows as ``(where, {column: stripped
        cell})``, ``where`` being ``FILE:LINE`` for error messages.

    Raises:
        RecordError: The table has no header, or a row has more cells than the header.
        ValueError: The table has no data row.
    """
    suffix = Path(path).suffix.lower()
    if suffix in ('.xls', '.xlsx'):
        header, numbered_rows = _read_excel(path)
    else:
        with open(path, newline='', encoding='utf-8-sig') as file:
            reader = csv.reader(file)
            header = next(reader, [])
            numbered_rows = [(reader.line_num, cells) for cells in reader]
    header = [str(name).strip() for name in header]
    if not any(header):
        raise RecordError(f'{path}:1', None, 'the table is empty; expected a header row')
    rows = []
    for line, cells in numbered_rows:
        cells = [str(cell).strip() for cell in cells]
        if not any(cells):
            continue
        if any(cells[len(header):]):
            raise RecordError(f'{path}:{line}', None, f'has {len(cells)} cells but the header '
                              f'has {len(header)}, so {cells[len(header):]} would be lost; quote '
                              'cells that contain commas ("a,b.png"), or name every column in '
                              'the header')
        cells += [''] * (len(header) - len(cells))  # short rows: empty trailing cells
        rows.append((f'{path}:{line}', dict(zip(header, cells))))
    if not rows:
        raise ValueError(f'{path}: the table has a header but no data rows; check ann_file '
                         'and data_root (is it the right table?)')
    return header, rows


def _read_excel(path: str) -> Tuple[List[str], List[Tuple[int, List[str]]]]:
    """The header and the ``(line, cells)`` rows of a spreadsheet's first sheet."""
    try:
        import pandas as pd
        frame = pd.read_excel(path, dtype=str, keep_default_na=False)
    except ImportError as error:
        raise ImportError(
            f'{path}: reading a spreadsheet needs pandas with xlrd (.xls) or openpyxl (.xlsx), '
            f'which are not installed ({error}); export the sheet as CSV, e.g. '
            f'`libreoffice --headless --convert-to csv "{path}"`, and pass the .csv') from error
    return list(frame.columns), [(index + 2, list(values))
                                 for index, values in enumerate(frame.itertuples(index=False))]


def _require_columns(path: str, header: Sequence[str], columns: Sequence[str]) -> None:
    missing = [column for column in columns if column not in header]
    if missing:
        raise RecordError(f'{path}:1', None,
                          f'missing columns {missing}; the header has {list(header)}')


def _find_column(path: str, header: Sequence[str], given: Optional[str],
                 candidates: Sequence[str], argument: str) -> str:
    """``given``, else the first candidate present in the header."""
    if given is not None:
        _require_columns(path, header, [given])
        return given
    for candidate in candidates:
        if candidate in header:
            return candidate
    raise RecordError(f'{path}:1', None, f'none of the columns {list(candidates)} is present '
                      f'(header: {list(header)}); name the column with {argument}=...')


def _score(where: str, field: str, cell: str) -> float:
    try:
        value = float(cell)
    except ValueError:
        value = float('nan')
    if not 0 <= value <= 1:
        raise RecordError(where, field, f'{cell!r} is not a label value in [0, 1] '
                          '(1 present, 0 absent, 0.5 uncertain)')
    return value


def _grade(where: str, field: str, cell: str, num_classes: int) -> int:
    try:
        value = int(float(cell))
        valid = value == float(cell) and 0 <= value < num_classes
    except (ValueError, OverflowError):  # not a number, NaN, infinity
        valid = False
    if not valid:
        raise RecordError(where, field, f'{cell!r} is not a class index in 0..{num_classes - 1}')
    return value


def _list_dirs(folder: Path) -> List[Path]:
    return sorted(path for path in folder.iterdir() if path.is_dir()) if folder.is_dir() else []


def _list_images(folder: Path) -> List[Path]:
    if not folder.is_dir():
        raise FileNotFoundError(f'{folder}: image folder not found; check data_root, '
                                'data_prefix (and split)')
    return sorted(path for path in folder.iterdir()
                  if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES)


def _no_images(folders: str) -> FileNotFoundError:
    """The error for image folders that hold no image."""
    return FileNotFoundError(f'{folders}: no image ({", ".join(IMAGE_SUFFIXES)}) found; check '
                             'data_root, data_prefix (and split)')


class DownstreamDataset(BaseDataset):
    """What the downstream datasets share: multi-label or multi-class infos and category ids.

    A subclass's ``load_data_list`` builds infos with :meth:`multi_label_info` or
    :meth:`multi_class_info`.
    """
    #: Whether samples carry several labels (``gt_score``) or one class index.
    multi_label = False

    @property
    def classes(self) -> Tuple[str, ...]:
        """Class keys, in label order."""
        return tuple(self._metainfo['classes'])

    @staticmethod
    def multi_label_info(img_path: str, scores: Sequence[float], **extra) -> dict:
        """A multi-label data info: ``gt_score`` and, as indices, the classes >= 0.5."""
        scores = np.asarray(scores, dtype=np.float32)
        return dict(img_path=img_path, gt_score=scores,
                    gt_label=np.flatnonzero(scores >= 0.5).tolist(), **extra)

    @staticmethod
    def multi_class_info(img_path: str, label: int, **extra) -> dict:
        """A multi-class data info."""
        return dict(img_path=img_path, gt_label=int(label), **extra)

    def get_cat_ids(self, idx: int) -> List[int]:
        """Category ids of sample ``idx``: mmpretrain's, or the indices of a multi-label one."""
        return (list(self.get_data_info(idx)['gt_label']) if self.multi_label else
                super().get_cat_ids(idx))

    def image_path(self, name: str) -> str:
        """Path of an image file named in an annotation."""
        return join_path(self.data_prefix['img_path'], name)


@DATASETS.register_module()
class FundusCSVDataset(DownstreamDataset):
    """Fundus images listed in a CSV table with their labels.

    Multi-label (default): one column per class holding 1 (present), 0 (absent) or a value
    in between (uncertain, e.g. 0.5)::

        image,diabetic_retinopathy,glaucoma,hemorrhage
        a.png,1,0,1

    Multi-class (``label_column`` given): one column with the class key or its index::

        image,grade
        a.png,2

    Args:
        ann_file: The CSV (.xls/.xlsx too when pandas can read them).
        image_column: Column of the image paths, relative to ``data_prefix``.
        label_column: Column of the class (multi-class). None: multi-label.
        label_columns: Multi-label columns in class order. Defaults to the columns named
            like the classes, or, without classes, every column but the image column.
        image_suffix: Appended to each image name (e.g. '.png' for bare ids).
        metainfo: ``classes`` names the classes (multi-class: needed when the column holds
            indices; without it the sorted distinct keys of the column are the classes).
        **kwargs: Other arguments of mmpretrain's ``BaseDataset`` (``data_root``,
            ``data_prefix``, ``pipeline``, ``classes`` ...).
    """

    def __init__(self,
                 ann_file: str,
                 image_column: str = 'image',
                 label_column: Optional[str] = None,
                 label_columns: Optional[Sequence[str]] = None,
                 image_suffix: str = '',
                 **kwargs) -> None:
        self.image_column = image_column
        self.label_column = label_column
        self.label_columns = tuple(label_columns) if label_columns is not None else None
        self.image_suffix = image_suffix
        self.multi_label = label_column is None
        super().__init__(ann_file=ann_file, **kwargs)

    def load_data_list(self) -> List[dict]:
        header, rows = read_table(self.ann_file)
        _require_columns(self.ann_file, header, [self.image_column])
        if self.multi_label:
            return self._multi_label_list(header, rows)
        return self._multi_class_list(header, rows)

    def _image(self, where: str, row: Dict[str, str]) -> str:
        name = row.get(self.image_column, '')
        if not name:
            raise RecordError(where, self.image_column, 'is empty; give the image file name')
        return self.image_path(name + self.image_suffix)

    def _multi_label_list(self, header: List[str], rows: list) -> List[dict]:
        classes = self._metainfo.get('classes')
        columns = self.label_columns or classes or [
            name for name in header if name and name != self.image_column]
        _require_columns(self.ann_file, header, columns)
        if classes is None:
            self._metainfo['classes'] = tuple(columns)
        elif len(classes) != len(columns):
            raise ValueError(f'{self.ann_file}: {len(classes)} classes but {len(columns)} '
                             f'label columns {list(columns)}; give one column per class')
        return [
            self.multi_label_info(self._image(where, row),
                                  [_score(where, column, row.get(column, ''))
                                   for column in columns])
            for where, row in rows
        ]

    def _multi_class_list(self, header: List[str], rows: list) -> List[dict]:
        _require_columns(self.ann_file, header, [self.label_column])
        classes = self._metainfo.get('classes')
        if classes is None:
            keys = {row.get(self.label_column, '') for _, row in rows} - {''}
            if keys and all(key.isdigit() for key in keys):
                raise ValueError(f'{self.ann_file}: column {self.label_column!r} holds class '
                                 'indices; name the classes with metainfo=dict(classes=[...])')
            classes = self._metainfo['classes'] = tuple(sorted(keys))
        index = {key: position for position, key in enumerate(classes)}
        data_list = []
        for where, row in rows:
            cell = row.get(self.label_column, '')
            label = index[cell] if cell in index else _grade(where, self.label_column, cell,
                                                              len(classes))
            data_list.append(self.multi_class_info(self._image(where, row), label))
        return data_list


@DATASETS.register_module()
class RFMiDDataset(FundusCSVDataset):
    """RFMiD 1.0 (Retinal Fundus Multi-disease Image Dataset), multi-label.

    The label CSVs (``RFMiD_Training_Labels.csv``, ``RFMiD_Validation_Labels.csv``,
    ``RFMiD_Testing_Labels.csv``) have ``ID``, ``Disease_Risk`` and the 45 disease columns
    of :data:`RFMID_DISEASES`; the images are ``{ID}.png`` in ``data_prefix``. The classes
    default to the 45 diseases; ``metainfo=dict(classes=[...])`` selects columns (including
    ``Disease_Risk``).

    Args:
        ann_file: A label CSV.
        image_suffix: Extension of the images. Defaults to '.png'.
        **kwargs: Arguments of :class:`FundusCSVDataset` but ``image_column`` and the label
            columns.
    """
    METAINFO = dict(classes=RFMID_DISEASES)

    def __init__(self, ann_file: str, image_suffix: str = '.png', **kwargs) -> None:
        super().__init__(ann_file, image_column='ID', image_suffix=image_suffix, **kwargs)


@DATASETS.register_module()
class ODIRDataset(DownstreamDataset):
    """ODIR-5K, multi-label over N D G C A H M O, two images (left, right) per patient.

    Reads the annotation table (``full_df.csv`` or the official xlsx exported as CSV) with
    the columns ``ID``, ``Left-Fundus``, ``Right-Fundus``, ``Left-Diagnostic Keywords``,
    ``Right-Diagnostic Keywords`` and ``N`` ... ``O``. A patient listed on several rows (as
    in ``full_df.csv``, one row per image) is read once. Images are in ``data_prefix``.

    The N ... O columns are per patient. ``label_source='keywords'`` (default) gives each eye
    the labels of its own diagnostic keywords (:data:`ODIR_KEYWORD_RULES`; keywords about
    the photograph, :data:`ODIR_NON_DIAGNOSTIC`, give none; any other keyword is 'O') and logs
    how many patients' keyword labels of both eyes together differ from their patient
    labels. ``label_source='patient'`` gives both eyes the patient's labels.

    Args:
        ann_file: The annotation table.
        label_source: 'keywords' or 'patient'.
        **kwargs: Other arguments of mmpretrain's ``BaseDataset``; ``metainfo`` classes may
            select a subset of N ... O.
    """
    METAINFO = dict(classes=ODIR_CLASSES)
    multi_label = True
    LABEL_SOURCES = ('keywords', 'patient')

    def __init__(self, ann_file: str, label_source: str = 'keywords', **kwargs) -> None:
        if label_source not in self.LABEL_SOURCES:
            raise ValueError(f'ODIRDataset: label_source={label_source!r} is not one of '
                             f'{self.LABEL_SOURCES}')
        self.label_source = label_source
        super().__init__(ann_file=ann_file, **kwargs)

    @staticmethod
    def keyword_labels(keywords: str) -> set:
        """ODIR classes asserted by one eye's diagnostic keywords (comma separated)."""
        labels = set()
        for keyword in re.split(r'[,，;；]', keywords.lower()):
            keyword = keyword.strip()
            if not keyword or any(term in keyword for term in ODIR_NON_DIAGNOSTIC):
                continue
            labels.add(next((label for fragment, label in ODIR_KEYWORD_RULES
                             if fragment in keyword), 'O'))
        return labels

    def load_data_list(self) -> List[dict]:
        header, rows = read_table(self.ann_file)
        _require_columns(self.ann_file, header,
                         ['ID', 'Left-Fundus', 'Right-Fundus', 'Left-Diagnostic Keywords',
                          'Right-Diagnostic Keywords', *ODIR_CLASSES])
        unknown = [key for key in self.classes if key not in ODIR_CLASSES]
        if unknown:
            raise ValueError(f'ODIRDataset: classes {unknown} are not ODIR classes '
                             f'{ODIR_CLASSES}')
        data_list, seen, num_disagreeing = [], set(), 0
        for where, row in rows:
            if row['ID'] in seen:
                continue
            seen.add(row['ID'])
            patient = {key for key in ODIR_CLASSES if _score(where, key, row[key]) >= 0.5}
            eyes = {}
            for eye, side in (('left', 'Left'), ('right', 'Right')):
                if not row[f'{side}-Fundus']:
                    raise RecordError(where, f'{side}-Fundus', 'is empty; give the image name')
                eyes[eye] = (patient if self.label_source == 'patient' else
                             self.keyword_labels(row[f'{side}-Diagnostic Keywords']))
            if self.label_source == 'keywords':
                union = eyes['left'] | eyes['right']
                # N for the patient means both eyes are normal.
                if union != {'N'}:
                    union.discard('N')
                num_disagreeing += union != patient
            for eye, side in (('left', 'Left'), ('right', 'Right')):
                data_list.append(self.multi_label_info(
                    self.image_path(row[f'{side}-Fundus']),
                    [float(key in eyes[eye]) for key in self.classes],
                    patient_id=row['ID'], eye=eye))
        if num_disagreeing:
            MMLogger.get_current_instance().warning(
                f'{self.ann_file}: for {num_disagreeing} of {len(seen)} patients the '
                "diagnostic keywords of both eyes give other labels than the N-O columns "
                "(label_source='keywords' uses the keywords)")
        return data_list


@DATASETS.register_module()
class REFUGEGlaucomaDataset(DownstreamDataset):
    """REFUGE glaucoma classification: classes ('normal', 'glaucoma').

    Three layouts:

    - a label table (``ann_file``, e.g. ``Glaucoma_label_and_Fovea_location.xlsx`` exported
      as CSV) with an image column (``ImgName``) and a 0/1 column (``Label(Glaucoma=1)`` or
      ``Glaucoma Label``); images in ``data_prefix``;
    - without ``ann_file``, ``Glaucoma/`` and ``Non-Glaucoma/`` sub-folders of
      ``data_prefix`` (REFUGE1 Training400);
    - without ``ann_file`` and those folders, image names starting with ``g`` (glaucoma) or
      ``n`` (normal) in ``data_prefix``.

    Args:
        ann_file: The label table, or '' for the folder layouts.
        image_column: Image column of the table. Defaults to the first of ``ImgName``,
            ``Image name``, ``image``, ``filename`` present.
        label_column: 0/1 column. Defaults to the first of ``Label(Glaucoma=1)``,
            ``Glaucoma Label``, ``label``, ``glaucoma`` present.
        **kwargs: Other arguments of mmpretrain's ``BaseDataset``.
    """
    METAINFO = dict(classes=('normal', 'glaucoma'))
    IMAGE_COLUMNS = ('ImgName', 'Image name', 'image', 'filename')
    LABEL_COLUMNS = ('Label(Glaucoma=1)', 'Glaucoma Label', 'label', 'glaucoma')
    FOLDERS = {'non-glaucoma': 0, 'glaucoma': 1}

    def __init__(self,
                 ann_file: str = '',
                 image_column: Optional[str] = None,
                 label_column: Optional[str] = None,
                 **kwargs) -> None:
        self.image_column = image_column
        self.label_column = label_column
        super().__init__(ann_file=ann_file, **kwargs)

    def load_data_list(self) -> List[dict]:
        if self.ann_file:
            return self._from_table()
        root = Path(self.data_prefix['img_path'])
        folders = {path.name.lower(): path for path in _list_dirs(root)}
        if set(self.FOLDERS) <= set(folders):
            data_list = [self.multi_class_info(str(path), label)
                         for name, label in self.FOLDERS.items()
                         for path in _list_images(folders[name])]
            if not data_list:
                raise _no_images(' and '.join(str(folders[name]) for name in self.FOLDERS))
            return data_list
        data_list = []
        images = _list_images(root)
        if not images:
            raise _no_images(str(root))
        for path in images:
            label = {'n': 0, 'g': 1}.get(path.name[0].lower())
            if label is None:
                raise RecordError(str(path), None,
                                  "the name starts with neither 'g' (glaucoma) nor 'n' "
                                  '(normal); use Glaucoma/ and Non-Glaucoma/ folders or a '
                                  'label table (ann_file)')
            data_list.append(self.multi_class_info(str(path), label))
        return data_list

    def _from_table(self) -> List[dict]:
        header, rows = read_table(self.ann_file)
        image_column = _find_column(self.ann_file, header, self.image_column,
                                    self.IMAGE_COLUMNS, 'image_column')
        label_column = _find_column(self.ann_file, header, self.label_column,
                                    self.LABEL_COLUMNS, 'label_column')
        data_list = []
        for where, row in rows:
            if not row[image_column]:
                raise RecordError(where, image_column, 'is empty; give the image name')
            data_list.append(self.multi_class_info(
                self.image_path(row[image_column]),
                _grade(where, label_column, row[label_column], 2)))
        return data_list


@DATASETS.register_module()
class MessidorDataset(DownstreamDataset):
    """MESSIDOR: diabetic retinopathy grade 0-3 (or risk of macular edema 0-2), multi-class.

    Reads the ``Annotation_Base*.xls`` tables (columns ``Image name``, ``Ophthalmologic
    department``, ``Retinopathy grade``, ``Risk of macular edema``). ``.xls`` needs pandas
    and xlrd; without them, export the tables as CSV. ``ann_file`` may be a glob pattern
    (e.g. ``'Base*/Annotation_Base*.csv'``) to read several tables. Each image is looked up
    next to its table (the layout of the distributed archives), or in ``data_prefix`` with
    ``images_beside_tables=False``.

    Args:
        ann_file: A table or a glob pattern of tables.
        target: 'retinopathy' (classes grade_0 ... grade_3) or 'macular_edema' (risk_0 ...
            risk_2).
        images_beside_tables: Look images up in the folder of their table.
        **kwargs: Other arguments of mmpretrain's ``BaseDataset``.
    """

    def __init__(self,
                 ann_file: str,
                 target: str = 'retinopathy',
                 images_beside_tables: bool = True,
                 metainfo: Optional[dict] = None,
                 **kwargs) -> None:
        if target not in MESSIDOR_TARGETS:
            raise ValueError(f'MessidorDataset: target={target!r} is not one of '
                             f'{tuple(MESSIDOR_TARGETS)}')
        self.target = target
        self.images_beside_tables = images_beside_tables
        metainfo = {'classes': MESSIDOR_TARGETS[target][1], **(metainfo or {})}
        super().__init__(ann_file=ann_file, metainfo=metainfo, **kwargs)

    def load_data_list(self) -> List[dict]:
        tables = sorted(glob.glob(self.ann_file))
        if not tables:
            raise FileNotFoundError(f'{self.ann_file}: no annotation table matches; check '
                                    'data_root and ann_file')
        column = MESSIDOR_TARGETS[self.target][0]
        data_list = []
        for table in tables:
            header, rows = read_table(table)
            _require_columns(table, header, ['Image name', column])
            folder = str(Path(table).parent)
            for where, row in rows:
                if not row['Image name']:
                    raise RecordError(where, 'Image name', 'is empty; give the image name')
                path = (join_path(folder, row['Image name']) if self.images_beside_tables
                        else self.image_path(row['Image name']))
                data_list.append(self.multi_class_info(
                    path, _grade(where, column, row[column], len(self.classes))))
        return data_list


@DATASETS.register_module()
class FIVESDataset(DownstreamDataset):
    """FIVES: classes normal, AMD, DR, glaucoma from the image names ``{n}_{N|A|D|G}.png``.

    Images are read from ``{data_prefix}/{split}/Original/`` (``train`` or ``test``), or from
    ``data_prefix`` itself with ``split=None``.

    Args:
        split: 'train', 'test' or None.
        **kwargs: Other arguments of mmpretrain's ``BaseDataset``.
    """
    METAINFO = dict(classes=tuple(FIVES_LETTERS.values()))
    NAME = re.compile(r'\d+_([A-Za-z])\.\w+\Z')

    def __init__(self, split: Optional[str] = 'test', **kwargs) -> None:
        if split not in ('train', 'test', None):
            raise ValueError(f"FIVESDataset: split={split!r} is not 'train', 'test' or None")
        self.split = split
        super().__init__(ann_file='', **kwargs)

    def load_data_list(self) -> List[dict]:
        folder = Path(self.data_prefix['img_path'])
        if self.split is not None:
            folder = folder / self.split / 'Original'
        index = {letter: position for position, letter in enumerate(FIVES_LETTERS)}
        images = _list_images(folder)
        if not images:
            raise _no_images(str(folder))
        data_list = []
        for path in images:
            match = self.NAME.match(path.name)
            letter = match.group(1).upper() if match else None
            if letter not in index:
                raise RecordError(str(path), None,
                                  'expected a name like 12_A.png whose letter is N (normal), '
                                  'A (AMD), D (diabetic retinopathy) or G (glaucoma)')
            data_list.append(self.multi_class_info(str(path), index[letter]))
        return data_list
