# mmseg's chase_db1.py with 512 x 512 training crops (ViT inputs) and mDice + mIoU, per class too.
_base_ = ['mmseg::_base_/datasets/chase_db1.py']

crop_size = (512, 512)
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(type='RandomResize', scale={{_base_.img_scale}}, ratio_range=(0.5, 2.0), keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size, cat_max_ratio=0.75),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PhotoMetricDistortion'),
    dict(type='PackSegInputs')
]
train_dataloader = dict(dataset=dict(dataset=dict(pipeline=train_pipeline)))

val_evaluator = dict(type='PerClassIoUMetric', iou_metrics=['mDice', 'mIoU'])
test_evaluator = val_evaluator
