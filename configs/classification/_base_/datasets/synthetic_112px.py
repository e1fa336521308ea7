# The built-in synthetic fundus dataset at 112 px (the CPU demo's data), 25 findings,
# multi-label:
#   python tools/data/make_synthetic_fundus.py work_dirs/demo/data --size 112
# Each record's labels are the report labeler's (on this data equal to the generator's
# findings); the demo also writes {val,test}_findings.jsonl with the findings as labels.
data_root = 'work_dirs/demo/data/'
dataset_type = 'ImageReportDataset'
img_size = 112

train_pipeline = [
    dict(type='LoadImageFromRecord'),
    dict(type='RandomResizedCrop', scale=img_size, crop_ratio_range=(0.9, 1.0),
         interpolation='bicubic', backend='pillow'),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromRecord'),
    dict(type='Resize', scale=(img_size, img_size), interpolation='bicubic', backend='pillow'),
    dict(type='PackInputs'),
]

train_dataloader = dict(
    batch_size=32,
    num_workers=1,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(
        type=dataset_type, data_root=data_root, ann_file='train.jsonl',
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=64,
    num_workers=1,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type, data_root=data_root, ann_file='val.jsonl', pipeline=test_pipeline))
test_dataloader = dict(
    batch_size=64,
    num_workers=1,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type, data_root=data_root, ann_file='test.jsonl', pipeline=test_pipeline))

val_evaluator = [dict(type='AUROC'), dict(type='AveragePrecision')]
test_evaluator = val_evaluator
