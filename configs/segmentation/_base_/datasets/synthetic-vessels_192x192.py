# The synthetic fundus vessels (`python tools/data/make_synthetic_fundus.py OUT_DIR --size 256`
# writes OUT_DIR/vessels in mmseg's DRIVE layout; set data_root to it). The 256 px images are
# doubled to 512 px so that a patch-16 ViT sees the thin vessels; 192 x 192 training crops
# (256 x 256 cost 1.6x the step for the same Dice on the CPU demo: 0.740 against 0.738).
_base_ = ['mmseg::_base_/datasets/drive.py']

data_root = 'data/synthetic_fundus/vessels'
img_scale = (512, 512)
crop_size = (192, 192)
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(type='RandomResize', scale=img_scale, ratio_range=(0.8, 1.25), keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size, cat_max_ratio=0.75),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackSegInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=img_scale, keep_ratio=True),
    dict(type='LoadAnnotations'),
    dict(type='PackSegInputs')
]
train_dataloader = dict(
    batch_size=4,
    num_workers=1,
    dataset=dict(
        _delete_=True,
        type={{_base_.dataset_type}},
        data_root=data_root,
        data_prefix=dict(img_path='images/training', seg_map_path='annotations/training'),
        pipeline=train_pipeline))
val_dataloader = dict(
    num_workers=1,
    persistent_workers=False,
    dataset=dict(data_root=data_root, pipeline=test_pipeline))
# the generator writes no segmentation layout for its test split: test on validation
test_dataloader = val_dataloader

val_evaluator = dict(type='PerClassIoUMetric', iou_metrics=['mDice', 'mIoU'])
test_evaluator = val_evaluator
