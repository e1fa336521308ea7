_base_ = [
    './_base_/models/upernet_vilref-vit-b16_mln.py', './_base_/datasets/drive_512x512.py',
    './_base_/default_runtime.py', './_base_/schedules/schedule_40kit_adamw-ld.py'
]

crop_size = (512, 512)
data_preprocessor = dict(size=crop_size)
model = dict(
    data_preprocessor=data_preprocessor,
    decode_head=dict(num_classes=2),
    auxiliary_head=dict(num_classes=2),
    test_cfg=dict(mode='slide', crop_size=crop_size, stride=(341, 341)))
