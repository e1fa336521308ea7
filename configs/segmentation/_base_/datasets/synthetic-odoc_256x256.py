# The synthetic optic disc and cup (`python tools/data/make_synthetic_fundus.py OUT_DIR --size 256`
# writes OUT_DIR/odoc in mmseg's REFUGE layout; set data_root to it). As for the vessels, the
# 256 px images are doubled to 512 px, so that the cup (about 17 px across at 256 px) spans
# two 16 px patches; 256 x 256 training crops that show the disc: RandomCrop draws up to 10
# crops until background is under 95 % of one (disc and cup are 2-3 % of the image, about 9 %
# of a crop around them); prediction on the whole 512 px image.
_base_ = ['mmseg::_base_/datasets/refuge.py']

data_root = 'data/synthetic_fundus/odoc'
img_scale = (512, 512)
crop_size = (256, 256)
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', reduce_zero_label=False),
    dict(type='RandomResize', scale=img_scale, ratio_range=(0.8, 1.25), keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size, cat_max_ratio=0.95),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PhotoMetricDistortion'),
    dict(type='PackSegInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=img_scale, keep_ratio=True),
    dict(type='LoadAnnotations', reduce_zero_label=False),
    dict(type='PackSegInputs')
]
train_dataloader = dict(
    num_workers=1,
    dataset=dict(data_root=data_root, pipeline=train_pipeline))
val_dataloader = dict(
    num_workers=1,
    persistent_workers=False,
    dataset=dict(data_root=data_root, pipeline=test_pipeline))
# the generator writes no segmentation layout for its test split: test on validation
test_dataloader = dict(
    num_workers=1,
    persistent_workers=False,
    dataset=dict(
        data_root=data_root,
        data_prefix=dict(img_path='images/validation', seg_map_path='annotations/validation'),
        pipeline=test_pipeline))

val_evaluator = dict(type='PerClassIoUMetric', iou_metrics=['mDice', 'mIoU'])
test_evaluator = val_evaluator
