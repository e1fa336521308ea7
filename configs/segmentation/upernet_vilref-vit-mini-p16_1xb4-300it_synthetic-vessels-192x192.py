# CPU demo: vessels of the synthetic fundus set (data_root: OUT_DIR/vessels of
# tools/data/make_synthetic_fundus.py) with the small pre-trained ViT of the demo; the 256 px
# images are doubled to 512 px, so that 16 px patches resolve the vessels, and trained on
# 192 x 192 crops with cross-entropy + Dice loss; prediction on the whole 512 px image.
_base_ = [
    './_base_/models/upernet_vilref-vit-mini-p16_mln.py',
    './_base_/datasets/synthetic-vessels_192x192.py', './_base_/default_runtime.py',
    './_base_/schedules/schedule_300it_adamw-ld.py'
]

crop_size = (192, 192)
data_preprocessor = dict(size=crop_size)
model = dict(
    data_preprocessor=data_preprocessor,
    decode_head=dict(
        num_classes=2,
        loss_decode=[
            dict(type='CrossEntropyLoss', loss_name='loss_ce', loss_weight=1.0),
            dict(type='DiceLoss', loss_name='loss_dice', loss_weight=3.0)
        ]),
    auxiliary_head=dict(num_classes=2),
    test_cfg=dict(mode='whole'))
