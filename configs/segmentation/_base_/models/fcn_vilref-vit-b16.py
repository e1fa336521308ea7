# FCN on the ViLReF ViT-B/16 image encoder (mmseg's FCN with the backbone replaced): the
# FCNHead reads the last block (stride 16), the auxiliary FCNHead block 8.
_base_ = ['mmseg::_base_/models/fcn_r50-d8.py']

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
        img_size=(512, 512),
        patch_size=16,
        out_type='featmap',
        out_indices=(7, 11),
        drop_path_rate=0.1,
        init_cfg=dict(type='Pretrained', checkpoint='checkpoints/vilref_vit-b16_backbone.pth')),
    decode_head=dict(in_channels=768, in_index=1, num_classes=2),
    auxiliary_head=dict(in_channels=768, in_index=0, num_classes=2))
