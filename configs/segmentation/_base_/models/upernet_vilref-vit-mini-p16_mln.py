# The UPerNet of upernet_vilref-vit-b16_mln.py on the small ViT of the CPU demo (192 wide,
# 4 blocks of 3 heads, patch 16: the image encoder of configs/vilref/*tiny* pre-training), with
# thin neck and heads (64 channels). Blocks 1-4 feed the neck (rescaled 4x, 2x, 1x, 0.5x).
# For another encoder size, set backbone.arch and the neck's and heads' in_channels alike.
_base_ = ['./upernet_vilref-vit-b16_mln.py']

embed_dims = 192
channels = 64
model = dict(
    backbone=dict(
        arch=dict(
            _delete_=True,
            embed_dims=embed_dims,
            num_layers=4,
            num_heads=3,
            feedforward_channels=768),
        img_size=(256, 256),
        out_indices=(0, 1, 2, 3),
        drop_path_rate=0.,
        init_cfg=None),  # random; see docs/segmentation.md to start from pre-trained weights
    neck=dict(in_channels=[embed_dims] * 4, out_channels=channels),
    decode_head=dict(in_channels=[channels] * 4, channels=channels),
    auxiliary_head=dict(in_channels=channels, channels=channels // 2))
