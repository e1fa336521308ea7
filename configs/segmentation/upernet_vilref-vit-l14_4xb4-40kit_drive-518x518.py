# UPerNet with the ViLReF ViT-L/14 backbone on DRIVE: the ViT-B/16 recipe with 518 x 518 crops
# (37 x 37 patches of 14; 512 is not a multiple of 14).
_base_ = [
    './_base_/models/upernet_vilref-vit-l14_mln.py', './_base_/datasets/drive_512x512.py',
    './_base_/default_runtime.py', './_base_/schedules/schedule_40kit_adamw-ld.py'
]

crop_size = (518, 518)
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

data_preprocessor = dict(size=crop_size)
model = dict(
    data_preprocessor=data_preprocessor,
    decode_head=dict(num_classes=2),
    auxiliary_head=dict(num_classes=2),
    test_cfg=dict(mode='slide', crop_size=crop_size, stride=(345, 345)))

# 24 blocks: 0.8 per block (about 0.65 ** 0.5) decays the stem's learning rate as much as 0.65
# does over ViT-B's 12 (0.8 ** 25 ~ 0.65 ** 13 ~ 0.004).
optim_wrapper = dict(paramwise_cfg=dict(layer_decay_rate=0.8))
