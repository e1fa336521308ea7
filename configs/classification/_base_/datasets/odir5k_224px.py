# ODIR-5K, N D G C A H M O, multi-label per eye. Only the training patients are labelled:
# split them by patient into ODIR-5K_{train,val,test}.csv (70/10/20, docs/transfer.md), so
# both eyes of a patient stay in one split.
_base_ = ['./fundus_224px.py']

dataset_type = 'ODIRDataset'
data_root = 'data/ODIR-5K/'
image_folder = 'ODIR-5K_Training_Dataset/'

train_dataloader = dict(
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        ann_file='ODIR-5K_train.csv',
        data_prefix=image_folder))
val_dataloader = dict(
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        ann_file='ODIR-5K_val.csv',
        data_prefix=image_folder))
test_dataloader = dict(
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        ann_file='ODIR-5K_test.csv',
        data_prefix=image_folder))

val_evaluator = [
    dict(type='AUROC'),
    dict(type='AveragePrecision'),
    dict(type='MultiLabelMetric', items=('f1-score', ), average='macro'),
]
test_evaluator = val_evaluator
