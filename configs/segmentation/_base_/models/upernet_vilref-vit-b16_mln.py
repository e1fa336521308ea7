# UPerNet on the ViLReF ViT-B/16 image encoder (mmseg's ViT-B/16 + MultiLevelNeck + UPerHead,
# with the backbone replaced): the feature maps of blocks 4, 6, 8 and 12 (stride 16) are
# rescaled 4x, 2x, 1x and 0.5x by the neck; the auxiliary FCNHead reads the 0.5x level.
_base_ = ['mmseg::_base_/models/upernet_vit-b16_ln_mln.py']

data_preprocessor = dict(
    mean=[122.771, 116.746, 104.094],  # CLIP's RGB mean and std, times 255
    std=[68.501, 66.632, 70.323],
    bgr_to_rgb=True)
model = dict(
    pretrained=None,
    data_preprocessor=data_preprocessor,
    backbone=dict(
        _delete_=True,
        type='ViLReFViT',
        arch='b',
        img_size=(512, 512),  # position embeddings are resized to every input's patch grid
        patch_size=16,
        out_type='featmap',
        out_indices=(3, 5, 7, 11),
        drop_path_rate=0.1,
        # converted with tools/model_converters/vilref_to_mm.py --backbone-only; see
        # docs/segmentation.md for a full ViLReF checkpoint (prefix='image_encoder.')
        init_cfg=dict(type='Pretrained', checkpoint='checkpoints/vilref_vit-b16_backbone.pth')),
    neck=dict(in_channels=[768, 768, 768, 768], out_channels=768, scales=[4, 2, 1, 0.5]),
    decode_head=dict(in_channels=[768, 768, 768, 768], num_classes=2),
    auxiliary_head=dict(in_channels=768, in_index=3, num_classes=2))
