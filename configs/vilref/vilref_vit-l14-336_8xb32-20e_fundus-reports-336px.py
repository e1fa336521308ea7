# ViLReF pre-training: ViT-L/14@336 + RoBERTa-wwm-ext-base-chinese (Chinese-CLIP's
# ViT-L/14@336), D = 768, on 336 x 336 crops, with the recipe of pretrain_vitb.py: WSCL with
# momentum encoders and a 65,536-entry memory queue, 8 GPUs x 32, zero-shot AUROC validation
# (docs/pretrain.md).
#   bash tools/dist_train.sh \
#       configs/vilref/vilref_vit-l14-336_8xb32-20e_fundus-reports-336px.py 8 --amp
_base_ = [
    '../_base_/models/vilref_vit-l14-336.py',
    '../_base_/datasets/image_report_pretrain.py',
    '../_base_/schedules/vilref_pretrain.py',
    '../_base_/default_runtime.py',
]

model = dict(
    # The 24 blocks of ViT-L/14 on 577 tokens are recomputed in backward instead of storing
    # their activations (the largest part of the memory at 32 images per GPU); the 12-layer
    # text encoder keeps them.
    image_encoder=dict(with_cp=True),
    queue_size=65536,  # a multiple of the global batch (256)
    num_classes=25,  # the default label set (docs/labels.md)
    zero_shot=dict(mode='multilabel'),
)

# The pipelines of image_report_pretrain.py at 336 px: a crop of area >= 0.9 has a shorter side
# >= 0.9 x the image's, so decoding keeps a shorter side of 336 / 0.9 = 374 px.
train_pipeline = [
    dict(type='LoadImageFromRecord', decode_min_side=374),
    dict(type='RandomResizedCrop', scale=336, crop_ratio_range=(0.9, 1.0),
         interpolation='bicubic', backend='pillow'),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='ColorJitter', brightness=0.1, contrast=0.1, saturation=0.1),  # no hue
    dict(type='TokenizeReport', tokenizer={{_base_.report_tokenizer}}),
    dict(type='PackImageReportInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromRecord'),
    dict(type='Resize', scale=(336, 336), interpolation='bicubic', backend='pillow'),
    dict(type='TokenizeReport', tokenizer={{_base_.report_tokenizer}}),
    dict(type='PackImageReportInputs'),
]

# Each sample's augmentation seeded from its position in the epoch (SampleIndex): a resumed
# run draws the same crops and jitter as the uninterrupted one, whatever num_workers.
train_dataloader = dict(
    sampler=dict(type='SeededDefaultSampler'), dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader

# Start from Chinese-CLIP's ViT-L/14@336 converted with
#   python tools/model_converters/vilref_to_mm.py clip_cn_vit-l-14-336.pt \
#       checkpoints/cnclip_vitl14-336.pth
# load_from = 'checkpoints/cnclip_vitl14-336.pth'
