# MESSIDOR diabetic retinopathy grades 0-3 (multi-class), split by base so that each split
# holds images of all three departments: bases x1 and x2 train (600 images), x3 validation
# (300), x4 test (300). Each base folder holds its images and its annotation table (exported
# as CSV, or the .xls when pandas and xlrd are installed: change the pattern).
_base_ = ['./fundus_224px.py']

dataset_type = 'MessidorDataset'
data_root = 'data/Messidor/'

train_dataloader = dict(
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        ann_file='Base[123][12]/Annotation_Base*.csv',
        target='retinopathy'))
val_dataloader = dict(
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        ann_file='Base[123]3/Annotation_Base*.csv',
        target='retinopathy'))
test_dataloader = dict(
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        ann_file='Base[123]4/Annotation_Base*.csv',
        target='retinopathy'))

val_evaluator = [
    dict(type='AUROC'),
    dict(type='Accuracy', topk=(1, )),
    dict(type='QuadraticWeightedKappa'),
]
test_evaluator = val_evaluator
