# The UPerNet of upernet_vilref-vit-b16_mln.py on the small ViT of the CPU demo (192 wide,
# 3 blocks of 3 heads with a 2x MLP, patch 16: the image encoder of configs/vilref/*tiny*
# pre-training), with thin neck and heads (32 channels; 64 cost 1.6x the training step for
# 0.01 of vessel Dice). The three blocks feed the neck, rescaled 4x, 2x and 1x; the pyramid
# pooling module reads the 1x level, the auxiliary FCNHead too.
# For another encoder size, set backbone.arch and the neck's and heads' in_channels alike.
_base_ = ['./upernet_vilref-vit-b16_mln.py']

embed_dims = 192
channels = 32
levels = (0, 1, 2)
model = dict(
    backbone=dict(
        arch=dict(
            _delete_=True,
            embed_dims=embed_dims,
            num_layers=3,
            num_heads=3,
            feedforward_channels=384),
        img_size=(256, 256),
        out_indices=levels,
        drop_path_rate=0.,
        init_cfg=None),  # random; see docs/segmentation.md to start from pre-trained weights
    neck=dict(in_channels=[embed_dims] * len(levels), out_channels=channels, scales=[4, 2, 1]),
    decode_head=dict(in_channels=[channels] * len(levels), in_index=list(levels),
                     channels=channels),
    auxiliary_head=dict(in_channels=channels, in_index=levels[-1], channels=channels // 2))
