# UPerNet on the ViLReF ModifiedResNet-50 image encoder (mmseg's UPerNet-R50 with the backbone
# replaced): stages 1-4 (256, 512, 1024, 2048 channels at strides 4-32); the auxiliary
# FCNHead reads stage 3. The attention pool is not used (and frozen).
_base_ = ['mmseg::_base_/models/upernet_r50.py']

norm_cfg = dict(type='SyncBN', requires_grad=True)
data_preprocessor = dict(
    mean=[122.771, 116.746, 104.094],  # CLIP's RGB mean and std, times 255
    std=[68.501, 66.632, 70.323],
    bgr_to_rgb=True)
model = dict(
    pretrained=None,
    data_preprocessor=data_preprocessor,
    backbone=dict(
        _delete_=True,
        type='ViLReFModifiedResNet',
        out_indices=(0, 1, 2, 3),
        norm_cfg=norm_cfg,
        init_cfg=dict(type='Pretrained', checkpoint='checkpoints/vilref_rn50_backbone.pth')),
    decode_head=dict(num_classes=2),
    auxiliary_head=dict(num_classes=2))
