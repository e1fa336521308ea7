# CPU demo: optic disc and cup of the synthetic fundus set (data_root: OUT_DIR/odoc of
# tools/data/make_synthetic_fundus.py) with the small pre-trained ViT of the demo; the 256 px
# images are doubled to 512 px, so that 16 px patches resolve the small cup, and trained on
# 256 x 256 crops around the disc with cross-entropy + Tversky loss (per class, so that the
# small disc and cup weigh as much as the background); prediction on the whole 512 px image.
_base_ = [
    './_base_/models/upernet_vilref-vit-mini-p16_mln.py',
    './_base_/datasets/synthetic-odoc_256x256.py', './_base_/default_runtime.py',
    './_base_/schedules/schedule_300it_adamw-ld.py'
]

crop_size = (256, 256)
data_preprocessor = dict(size=crop_size)
model = dict(
    data_preprocessor=data_preprocessor,
    decode_head=dict(
        num_classes=3,
        loss_decode=[
            dict(type='CrossEntropyLoss', loss_name='loss_ce', loss_weight=1.0),
            dict(type='TverskyLoss', loss_name='loss_tversky', alpha=0.3, beta=0.7,
                 loss_weight=3.0)
        ]),
    auxiliary_head=dict(num_classes=3),
    test_cfg=dict(mode='whole'))
