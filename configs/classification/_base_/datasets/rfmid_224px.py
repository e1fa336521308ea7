# RFMiD 1.0, 45 diseases, multi-label: its training (1,920), evaluation (640) and test (640)
# sets as distributed (docs/transfer.md).
_base_ = ['./fundus_224px.py']

dataset_type = 'RFMiDDataset'
data_root = 'data/RFMiD/'

train_dataloader = dict(
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        ann_file='Training_Set/RFMiD_Training_Labels.csv',
        data_prefix='Training_Set/Training/'))
val_dataloader = dict(
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        ann_file='Evaluation_Set/RFMiD_Validation_Labels.csv',
        data_prefix='Evaluation_Set/Validation/'))
test_dataloader = dict(
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        ann_file='Test_Set/RFMiD_Testing_Labels.csv',
        data_prefix='Test_Set/Test/'))

val_evaluator = [
    dict(type='AUROC'),
    dict(type='AveragePrecision'),
    dict(type='MultiLabelMetric', items=('f1-score', ), average='macro'),
]
test_evaluator = val_evaluator
