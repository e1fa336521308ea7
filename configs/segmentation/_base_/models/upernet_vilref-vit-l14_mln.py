# UPerNet on the ViLReF ViT-L/14 image encoder (the ViT-B/16 model's neck and heads, 1024 wide):
# the feature maps of blocks 8, 12, 16 and 24 (stride 14) are rescaled 4x, 2x, 1x and 0.5x by
# the neck; the auxiliary FCNHead reads the 0.5x level.
_base_ = ['./upernet_vilref-vit-b16_mln.py']

model = dict(
    backbone=dict(
        arch='l',
        # crops a multiple of the patch (518 = 37 x 14); position embeddings are resized to
        # every input's patch grid
        img_size=(518, 518),
        patch_size=14,
        out_indices=(7, 11, 15, 23),
        # converted with tools/model_converters/vilref_to_mm.py --backbone-only from a
        # ViT-L/14 release (Chinese-CLIP's clip_cn_vit-l-14.pt or a ViLReF ViT-L/14)
        init_cfg=dict(checkpoint='checkpoints/cnclip_vit-l14_backbone.pth')),
    neck=dict(in_channels=[1024, 1024, 1024, 1024], out_channels=1024),
    decode_head=dict(in_channels=[1024, 1024, 1024, 1024]),
    auxiliary_head=dict(in_channels=1024))
