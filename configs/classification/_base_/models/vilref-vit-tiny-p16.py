# An mmpretrain ImageClassifier on the image encoder of the CPU demo's tiny ViLReF
# (configs/vilref/vilref_vit-tiny-p16_*_synthetic-112px.py): ViT 192 wide, 3 layers, patch 16,
# 112 px; the feature is ln_post(CLS), 192-d. The top-level configs add the head.
#
# init_cfg reads tensor-only files: `make demo` writes the weights of its pre-training as
# work_dirs/demo/pretrain/weights.pth (docs/transfer.md for other runs).
model = dict(
    type='ImageClassifier',
    data_preprocessor=dict(
        type='ClsDataPreprocessor',
        mean=[122.7709383, 116.7460125, 104.09373615],  # CLIP's, x 255, RGB
        std=[68.5005327, 66.6321579, 70.32316305],
        to_rgb=True),
    backbone=dict(
        type='ViLReFViT',
        arch=dict(embed_dims=192, num_layers=3, num_heads=3, feedforward_channels=384),
        img_size=112,
        patch_size=16,
        out_type='cls_token',  # ln_post(CLS)
        init_cfg=dict(
            type='Pretrained',
            checkpoint='work_dirs/demo/pretrain/weights.pth',
            prefix='image_encoder.')),
    neck=None)
