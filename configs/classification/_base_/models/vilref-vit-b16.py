# An mmpretrain ImageClassifier on the ViLReF ViT-B/16 image encoder. The feature is
# ln_post(CLS), 768-d (the image projection of the dual encoder is not used); the top-level
# configs add the head (multi-label or multi-class) and, for the linear probe, freeze the
# encoder.
#
# The encoder's weights come from a full converted or pre-trained ViLReF checkpoint, under
# its 'image_encoder.' keys (python tools/model_converters/vilref_to_mm.py ViLReF_ViT.pt
# checkpoints/vilref_vitb16.pth); another file with
#   --cfg-options model.backbone.init_cfg.checkpoint=PATH
# (a --backbone-only file: also model.backbone.init_cfg.prefix=None).
model = dict(
    type='ImageClassifier',
    data_preprocessor=dict(
        type='ClsDataPreprocessor',
        mean=[122.7709383, 116.7460125, 104.09373615],  # CLIP's, x 255, RGB
        std=[68.5005327, 66.6321579, 70.32316305],
        to_rgb=True),
    backbone=dict(
        type='ViLReFViT',
        arch='b',
        img_size=224,
        patch_size=16,
        out_type='cls_token',  # ln_post(CLS)
        init_cfg=dict(
            type='Pretrained',
            checkpoint='checkpoints/vilref_vitb16.pth',
            prefix='image_encoder.')),
    neck=None)
