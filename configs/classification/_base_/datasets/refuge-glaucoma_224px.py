# REFUGE glaucoma classification (normal, glaucoma): REFUGE1 Training400 (its Glaucoma/ and
# Non-Glaucoma/ folders) to train, Test400 with its label sheet (exported as CSV) to test.
# REFUGE has no other labelled glaucoma split, so validation uses Test400 too; nothing is
# selected on it (the last checkpoint is tested).
_base_ = ['./fundus_224px.py']

dataset_type = 'REFUGEGlaucomaDataset'
data_root = 'data/REFUGE/'

train_dataloader = dict(
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        ann_file='',
        data_prefix='REFUGE-Training400/Training400/'))
test_dataloader = dict(
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        ann_file='REFUGE-Test-GT/Glaucoma_label_and_Fovea_location.csv',
        data_prefix='REFUGE-Test400/Test400/'))
val_dataloader = test_dataloader

# auroc/glaucoma is the glaucoma AUROC (auroc/macro averages it with its mirror image).
val_evaluator = [
    dict(type='AUROC'),
    dict(type='Accuracy', topk=(1, )),
]
test_evaluator = val_evaluator
