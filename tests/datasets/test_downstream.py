"""Downstream datasets: the generic CSV and the RFMiD, ODIR-5K, REFUGE, MESSIDOR and FIVES
layouts, on tiny files written to tmp_path."""
import logging
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from mmengine.logging import MMLogger
from mmpretrain.registry import DATASETS

from vilref_mm.datasets.downstream import (FIVESDataset, FundusCSVDataset, MessidorDataset,
                                           ODIRDataset, REFUGEGlaucomaDataset, RFMiDDataset,
                                           RFMID_DISEASES)
from vilref_mm.datasets.records import RecordError

PIPELINE = [dict(type='LoadImageFromFile'), dict(type='Resize', scale=(16, 16)),
            dict(type='PackInputs')]


def write_image(path: Path, value: int = 0) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), np.full((12, 10, 3), value, np.uint8))


def write_csv(path: Path, rows) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text('\n'.join(','.join(map(str, row)) for row in rows) + '\n',
                    encoding='utf-8')
    return path


def test_generic_csv_multi_label(tmp_path):
    write_csv(tmp_path / 'labels.csv', [['image', 'glaucoma', 'hemorrhage', 'drusen'],
                                        ['a.png', 1, 0, 0.5], ['b.png', 0, 0, 0], [],
                                        ['c.png', 1.0, 1, 0]])
    for name in 'abc':
        write_image(tmp_path / 'img' / f'{name}.png')
    dataset = DATASETS.build(dict(type='FundusCSVDataset', data_root=str(tmp_path),
                                  ann_file='labels.csv', data_prefix='img',
                                  pipeline=PIPELINE))
    assert dataset.classes == ('glaucoma', 'hemorrhage', 'drusen') and len(dataset) == 3
    info = dataset.get_data_info(0)
    assert info['img_path'] == str(tmp_path / 'img' / 'a.png')
    np.testing.assert_array_equal(info['gt_score'], [1, 0, 0.5])
    assert info['gt_label'] == [0, 2]  # uncertain (0.5) counts as a positive index
    assert dataset.get_cat_ids(2) == [0, 1] and dataset.get_cat_ids(1) == []
    sample = dataset[0]['data_samples']
    torch.testing.assert_close(sample.gt_score, torch.tensor([1., 0., 0.5]))
    assert dataset[0]['inputs'].shape == (3, 16, 16)
    subset = FundusCSVDataset(str(tmp_path / 'labels.csv'), label_columns=['drusen'],
                              metainfo=dict(classes=['玻璃膜疣']))
    assert subset.classes == ('玻璃膜疣', ) and subset.get_data_info(0)['gt_label'] == [0]


def test_generic_csv_multi_class(tmp_path):
    write_csv(tmp_path / 'grades.csv', [['file', 'grade'], ['a.png', 'mild'], ['b.png', 'none'],
                                        ['c.png', 'mild']])
    dataset = FundusCSVDataset(str(tmp_path / 'grades.csv'), image_column='file',
                               label_column='grade')
    assert dataset.classes == ('mild', 'none')
    assert [dataset.get_data_info(i)['gt_label'] for i in range(3)] == [0, 1, 0]
    assert dataset.get_cat_ids(1) == [1]
    write_csv(tmp_path / 'indices.csv', [['image', 'label'], ['a.png', 2], ['b.png', 0]])
    dataset = FundusCSVDataset(str(tmp_path / 'indices.csv'), label_column='label',
                               metainfo=dict(classes=['g0', 'g1', 'g2']))
    assert [dataset.get_data_info(i)['gt_label'] for i in range(2)] == [2, 0]
    with pytest.raises(ValueError, match='holds class indices; name the classes'):
        FundusCSVDataset(str(tmp_path / 'indices.csv'), label_column='label')


def test_generic_csv_errors_name_file_line_and_field(tmp_path):
    path = write_csv(tmp_path / 'bad.csv', [['image', 'glaucoma'], ['a.png', 1], ['b.png', 'yes']])
    with pytest.raises(RecordError, match=r"bad\.csv:3: field 'glaucoma' 'yes' is not a label "):
        FundusCSVDataset(str(path))
    path = write_csv(tmp_path / 'noimage.csv', [['img', 'glaucoma'], ['a.png', 1]])
    with pytest.raises(RecordError, match=r"noimage\.csv:1: missing columns \['image'\]"):
        FundusCSVDataset(str(path))
    for cell in (7, 'nan', 'inf', 1.5, ''):
        path = write_csv(tmp_path / 'grade.csv', [['image', 'grade'], ['a.png', 0],
                                                  ['b.png', cell]])
        with pytest.raises(RecordError, match=r"grade\.csv:3: field 'grade' .* is not a class"):
            FundusCSVDataset(str(path), label_column='grade', metainfo=dict(classes=['a', 'b']))
    path = write_csv(tmp_path / 'short.csv', [['image', 'glaucoma', 'amd'], ['a.png', 1]])
    with pytest.raises(RecordError, match=r"short\.csv:2: field 'amd' '' is not a label"):
        FundusCSVDataset(str(path))


def test_rfmid(tmp_path):
    header = ['ID', 'Disease_Risk', *RFMID_DISEASES]
    rows = [header]
    for image_id, positives in ((1, {'DR', 'MH'}), (2, set()), (3, {'CL'})):
        rows.append([image_id, int(bool(positives)),
                     *[int(column in positives) for column in RFMID_DISEASES]])
        write_image(tmp_path / 'Test' / f'{image_id}.png')
    write_csv(tmp_path / 'RFMiD_Testing_Labels.csv', rows)
    assert len(RFMID_DISEASES) == 45
    dataset = RFMiDDataset(str(tmp_path / 'RFMiD_Testing_Labels.csv'),
                           data_prefix=str(tmp_path / 'Test'), pipeline=PIPELINE)
    assert dataset.classes == RFMID_DISEASES and len(dataset) == 3
    first = dataset.get_data_info(0)
    assert first['img_path'].endswith('Test/1.png') and first['gt_score'].shape == (45, )
    assert first['gt_label'] == [0, 2]
    assert dataset.get_data_info(2)['gt_label'] == [44]
    assert dataset[1]['data_samples'].gt_score.sum() == 0
    risk = RFMiDDataset(str(tmp_path / 'RFMiD_Testing_Labels.csv'),
                        metainfo=dict(classes=['Disease_Risk', 'DR']))
    np.testing.assert_array_equal(risk.get_data_info(0)['gt_score'], [1, 1])
    np.testing.assert_array_equal(risk.get_data_info(2)['gt_score'], [1, 0])


ODIR_HEADER = ['ID', 'Patient Age', 'Patient Sex', 'Left-Fundus', 'Right-Fundus',
               'Left-Diagnostic Keywords', 'Right-Diagnostic Keywords',
               'N', 'D', 'G', 'C', 'A', 'H', 'M', 'O']


def odir_table(tmp_path: Path) -> Path:
    rows = [
        # patient 0: DR in the left eye only (with lens dust), right eye normal
        [0, 69, 'Female', '0_left.jpg', '0_right.jpg',
         '"moderate non proliferative retinopathy，lens dust"', 'normal fundus',
         0, 1, 0, 0, 0, 0, 0, 0],
        # patient 1: both normal
        [1, 57, 'Male', '1_left.jpg', '1_right.jpg', 'normal fundus', 'normal fundus',
         1, 0, 0, 0, 0, 0, 0, 0],
        # patient 1 again (full_df.csv has one row per image)
        [1, 57, 'Male', '1_left.jpg', '1_right.jpg', 'normal fundus', 'normal fundus',
         1, 0, 0, 0, 0, 0, 0, 0],
        # patient 2: glaucoma left, pathological myopia + drusen right; patient row lacks O
        [2, 42, 'Male', '2_left.jpg', '2_right.jpg', 'suspected glaucoma',
         '"pathological myopia，drusen"', 0, 0, 1, 0, 0, 0, 1, 0],
    ]
    return write_csv(tmp_path / 'full_df.csv', [ODIR_HEADER, *rows])


def test_odir_keyword_labels():
    labels = ODIRDataset.keyword_labels
    assert labels('mild nonproliferative retinopathy') == {'D'}
    assert labels('proliferative diabetic retinopathy，lens dust') == {'D'}
    assert labels('wet age-related macular degeneration') == {'A'}
    assert labels('hypertensive retinopathy，myopia retinopathy') == {'H', 'M'}
    assert labels('cataract') == {'C'} and labels('suspected glaucoma') == {'G'}
    assert labels('epiretinal membrane，laser spot') == {'O'}
    assert labels('low image quality，lens dust') == set()
    assert labels('normal fundus') == {'N'}


def test_odir_per_eye_labels_from_keywords(tmp_path):
    messages = []
    handler = logging.Handler()
    handler.emit = lambda record: messages.append(record.getMessage())
    logger = MMLogger.get_current_instance()
    logger.addHandler(handler)
    try:
        dataset = ODIRDataset(str(odir_table(tmp_path)), data_prefix=str(tmp_path / 'images'))
    finally:
        logger.removeHandler(handler)
    assert len(dataset) == 6 and dataset.classes == ('N', 'D', 'G', 'C', 'A', 'H', 'M', 'O')
    scores = {(info['patient_id'], info['eye']): info['gt_score'].tolist()
              for info in (dataset.get_data_info(i) for i in range(6))}
    assert scores[('0', 'left')] == [0, 1, 0, 0, 0, 0, 0, 0]
    assert scores[('0', 'right')] == [1, 0, 0, 0, 0, 0, 0, 0]
    assert scores[('2', 'right')] == [0, 0, 0, 0, 0, 0, 1, 1]
    assert dataset.get_data_info(0)['img_path'] == str(tmp_path / 'images' / '0_left.jpg')
    # Only patient 2 disagrees (drusen -> O, which the patient row lacks).
    assert any('for 1 of 3 patients' in message for message in messages)


def test_odir_patient_labels_and_class_subset(tmp_path):
    table = odir_table(tmp_path)
    dataset = ODIRDataset(str(table), label_source='patient', metainfo=dict(classes=['D', 'N']))
    assert dataset.classes == ('D', 'N')
    assert [dataset.get_data_info(i)['gt_score'].tolist() for i in (0, 1, 2)] == \
        [[1, 0], [1, 0], [0, 1]]
    with pytest.raises(ValueError, match='label_source'):
        ODIRDataset(str(table), label_source='eye')
    with pytest.raises(ValueError, match=r"classes \['X'\] are not ODIR classes"):
        ODIRDataset(str(table), metainfo=dict(classes=['X']))


def test_refuge_layouts(tmp_path):
    write_image(tmp_path / 'Training400' / 'Glaucoma' / 'g0001.jpg')
    write_image(tmp_path / 'Training400' / 'Non-Glaucoma' / 'n0001.jpg')
    write_image(tmp_path / 'Training400' / 'Non-Glaucoma' / 'n0002.jpg')
    folders = REFUGEGlaucomaDataset(data_prefix=str(tmp_path / 'Training400'))
    labels = {Path(info['img_path']).name: info['gt_label']
              for info in (folders.get_data_info(i) for i in range(3))}
    assert labels == {'g0001.jpg': 1, 'n0001.jpg': 0, 'n0002.jpg': 0}
    assert folders.classes == ('normal', 'glaucoma')

    write_image(tmp_path / 'flat' / 'g0007.jpg')
    write_image(tmp_path / 'flat' / 'n0003.jpg')
    flat = REFUGEGlaucomaDataset(data_root=str(tmp_path), data_prefix='flat', pipeline=PIPELINE)
    assert [flat.get_data_info(i)['gt_label'] for i in range(2)] == [1, 0]
    assert flat[0]['data_samples'].gt_label.tolist() == [1]

    write_csv(tmp_path / 'gt.csv', [['ID', 'ImgName', 'Fovea_X', 'Fovea_Y', 'Label(Glaucoma=1)'],
                                    [1, 'T0001.jpg', 1, 2, 1], [2, 'T0002.jpg', 3, 4, 0]])
    table = REFUGEGlaucomaDataset(ann_file=str(tmp_path / 'gt.csv'),
                                  data_prefix=str(tmp_path / 'Test400'))
    assert [table.get_data_info(i)['gt_label'] for i in range(2)] == [1, 0]
    assert table.get_data_info(0)['img_path'] == str(tmp_path / 'Test400' / 'T0001.jpg')

    write_image(tmp_path / 'flat' / 'x0001.jpg')
    with pytest.raises(RecordError, match=r"x0001\.jpg: the name starts with neither 'g'"):
        REFUGEGlaucomaDataset(data_prefix=str(tmp_path / 'flat'))
    write_csv(tmp_path / 'other.csv', [['name', 'y'], ['a.jpg', 1]])
    with pytest.raises(RecordError, match='name the column with image_column='):
        REFUGEGlaucomaDataset(ann_file=str(tmp_path / 'other.csv'))
    assert len(REFUGEGlaucomaDataset(ann_file=str(tmp_path / 'other.csv'), image_column='name',
                                     label_column='y')) == 1


def test_messidor_tables_by_glob(tmp_path):
    header = ['Image name', 'Ophthalmologic department', 'Retinopathy grade',
              'Risk of macular edema ']  # the original tables end this name with a space
    write_csv(tmp_path / 'Base11' / 'Annotation_Base11.csv',
              [header, ['a.tif', 'Service Ophtalmologie Lariboisière', 3, 2],
               ['b.tif', 'Service Ophtalmologie Lariboisière', 0, 0]])
    write_csv(tmp_path / 'Base12' / 'Annotation_Base12.csv',
              [header, ['c.tif', 'CHU de St Etienne', 1, 0]])
    for base, name in (('Base11', 'a'), ('Base11', 'b'), ('Base12', 'c')):
        write_image(tmp_path / base / f'{name}.tif')
    dataset = DATASETS.build(dict(type='MessidorDataset', data_root=str(tmp_path),
                                  ann_file='Base*/Annotation_Base*.csv', pipeline=PIPELINE))
    assert dataset.classes == ('grade_0', 'grade_1', 'grade_2', 'grade_3')
    assert [dataset.get_data_info(i)['gt_label'] for i in range(3)] == [3, 0, 1]
    assert dataset.get_data_info(2)['img_path'] == str(tmp_path / 'Base12' / 'c.tif')
    assert dataset[2]['inputs'].shape == (3, 16, 16)
    edema = MessidorDataset(str(tmp_path / 'Base11' / 'Annotation_Base11.csv'),
                            target='macular_edema', images_beside_tables=False,
                            data_prefix=str(tmp_path / 'all'))
    assert edema.classes == ('risk_0', 'risk_1', 'risk_2')
    assert edema.get_data_info(0) == dict(img_path=str(tmp_path / 'all' / 'a.tif'),
                                          gt_label=2, sample_idx=0)
    with pytest.raises(FileNotFoundError, match='no annotation table matches'):
        MessidorDataset(str(tmp_path / 'Base9*/*.csv'))


def test_spreadsheets_need_pandas_or_a_csv_export(tmp_path):
    try:
        import pandas  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip('pandas is installed: spreadsheets are read')
    (tmp_path / 'Annotation_Base11.xls').write_bytes(b'\xd0\xcf\x11\xe0')
    with pytest.raises(ImportError, match='export the sheet as CSV'):
        MessidorDataset(str(tmp_path / 'Annotation_Base11.xls'))


def test_fives(tmp_path):
    for split, names in (('train', ['1_A.png', '2_N.png']),
                         ('test', ['10_D.png', '11_G.png', '12_N.png'])):
        for name in names:
            write_image(tmp_path / split / 'Original' / name)
    (tmp_path / 'test' / 'Original' / 'notes.txt').write_text('ignored')
    test = DATASETS.build(dict(type='FIVESDataset', data_root=str(tmp_path), split='test',
                               pipeline=PIPELINE))
    assert test.classes == ('normal', 'amd', 'diabetic_retinopathy', 'glaucoma')
    assert [(Path(test.get_data_info(i)['img_path']).name, test.get_data_info(i)['gt_label'])
            for i in range(3)] == [('10_D.png', 2), ('11_G.png', 3), ('12_N.png', 0)]
    assert test[1]['data_samples'].gt_label.tolist() == [3]
    train = FIVESDataset(split='train', data_root=str(tmp_path))
    assert [train.get_data_info(i)['gt_label'] for i in range(2)] == [1, 0]
    flat = FIVESDataset(split=None, data_prefix=str(tmp_path / 'train' / 'Original'))
    assert len(flat) == 2
    write_image(tmp_path / 'train' / 'Original' / '3_X.png')
    with pytest.raises(RecordError, match=r'3_X\.png: expected a name like 12_A\.png'):
        FIVESDataset(split='train', data_root=str(tmp_path))
    with pytest.raises(FileNotFoundError, match='image folder not found'):
        FIVESDataset(split='test', data_root=str(tmp_path / 'missing'))


def test_empty_datasets_name_the_file_or_folder(tmp_path):
    (tmp_path / 'fives' / 'test' / 'Original').mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match=rf"{tmp_path / 'fives'}/test/Original: no "
                       r'image \(\.jpg.*check data_root, data_prefix \(and split\)'):
        FIVESDataset(data_root=str(tmp_path / 'fives'))
    for name in ('Glaucoma', 'Non-Glaucoma'):
        (tmp_path / 'refuge' / name).mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match=rf"{tmp_path / 'refuge'}/Non-Glaucoma and "
                       rf"{tmp_path / 'refuge'}/Glaucoma: no image"):
        REFUGEGlaucomaDataset(data_prefix=str(tmp_path / 'refuge'))
    (tmp_path / 'flat').mkdir()
    with pytest.raises(FileNotFoundError, match=rf"{tmp_path / 'flat'}: no image"):
        REFUGEGlaucomaDataset(data_prefix=str(tmp_path / 'flat'))
    header_only = {
        FundusCSVDataset: ['image', 'glaucoma'],
        REFUGEGlaucomaDataset: ['ImgName', 'Label(Glaucoma=1)'],
        MessidorDataset: ['Image name', 'Retinopathy grade'],
    }
    for dataset_type, header in header_only.items():
        path = write_csv(tmp_path / f'{dataset_type.__name__}.csv', [header, [], ['', '']])
        with pytest.raises(ValueError, match=rf'{path}: the table has a header but no data '
                           'rows; check ann_file and data_root'):
            dataset_type(ann_file=str(path))


def test_a_row_with_more_cells_than_the_header_is_an_error(tmp_path):
    path = write_csv(tmp_path / 'labels.csv', [['image', 'glaucoma'], ['a.png', 1],
                                               ['b,c.png', 0]])
    with pytest.raises(RecordError, match=rf'{path}:3: has 3 cells but the header has 2, '
                       r"so \['0'\] would be lost; quote cells that contain commas"):
        FundusCSVDataset(str(path))
    path.write_text('image,glaucoma\na.png,1,,\n"b,c.png",0\n', encoding='utf-8')
    dataset = FundusCSVDataset(str(path))  # quoted commas and empty extra cells are fine
    assert [dataset.get_data_info(i)['img_path'] for i in range(2)] == ['a.png', 'b,c.png']
    assert [dataset.get_data_info(i)['gt_label'] for i in range(2)] == [[0], []]


def test_spreadsheets_skip_blank_rows_like_csv_tables(tmp_path, monkeypatch):
    class Frame:
        columns = ['image', 'glaucoma ']
        rows = [('a.png', '1'), ('', ' '), ('b.png', '0')]

        def itertuples(self, index):
            return iter(self.rows)

    pandas = type(sys)('pandas')
    pandas.read_excel = lambda path, dtype, keep_default_na: Frame()
    monkeypatch.setitem(sys.modules, 'pandas', pandas)
    (tmp_path / 'labels.xlsx').write_bytes(b'')
    write_csv(tmp_path / 'labels.csv', [Frame.columns, *Frame.rows])
    for name in ('labels.xlsx', 'labels.csv'):
        dataset = FundusCSVDataset(str(tmp_path / name))
        assert dataset.classes == ('glaucoma', ) and len(dataset) == 2
        assert [dataset.get_data_info(i)['gt_label'] for i in range(2)] == [[0], []]
    Frame.rows[2] = ('b.png', 'yes')
    with pytest.raises(RecordError, match=r"labels\.xlsx:4: field 'glaucoma' 'yes'"):
        FundusCSVDataset(str(tmp_path / 'labels.xlsx'))
