# Image-report pairs for ViLReF pre-training (docs/data_preparation.md).
# The data: a JSON Lines manifest (ImageReportDataset, ann_file='train.jsonl') or an LMDB folder
# of the ViLReF / Chinese-CLIP layout (dataset_type = 'ImageReportLMDBDataset',
# ann_file='lmdb/train'). Records without labels are labelled once and the labels cached.
dataset_type = 'ImageReportDataset'
data_root = 'data/fundus_reports/'

report_tokenizer = dict(type='ChineseBertTokenizer', context_length=100)

# The release's augmentation (timm create_transform with scale (0.9, 1.0), hflip 0.5,
# color_jitter 0.1, PIL bicubic). The horizontal flip turns a right eye into the mirror image
# of a left eye while the report keeps its laterality; the release flips anyway. Set
# prob=0. to keep the anatomy consistent with the report.
# LoadImageFromRecord decodes large JPEGs at 1/2, 1/4 or 1/8 scale keeping the shorter side at
# least 249 px: a crop of area >= 0.9 has a shorter side >= 0.9 x the image's and 224 / 0.9 =
# 249, so the crop is never upsampled. On 2048 px JPEGs: 3-7x the images/s, 0.4-0.6 (of 255)
# mean difference from a full decode after the resize to 224 (docs/data_preparation.md).
# decode_min_side=None decodes every image in full, bit-exact.
train_pipeline = [
    dict(type='LoadImageFromRecord', decode_min_side=249),
    dict(type='RandomResizedCrop', scale=224, crop_ratio_range=(0.9, 1.0),
         interpolation='bicubic', backend='pillow'),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='ColorJitter', brightness=0.1, contrast=0.1, saturation=0.1),  # no hue
    dict(type='TokenizeReport', tokenizer=report_tokenizer),
    dict(type='PackImageReportInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromRecord'),
    dict(type='Resize', scale=(224, 224), interpolation='bicubic', backend='pillow'),
    dict(type='TokenizeReport', tokenizer=report_tokenizer),
    dict(type='PackImageReportInputs'),
]

train_dataloader = dict(
    batch_size=32,  # per GPU; 8 GPUs x 32 = 256, the release's global batch
    num_workers=8,
    persistent_workers=True,
    # The memory queue needs a constant global batch (its size is a multiple of it).
    drop_last=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    # Keeps the per-sample lists that ViLReFDataPreprocessor stacks.
    collate_fn=dict(type='pseudo_collate'),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        ann_file='train.jsonl',
        pipeline=train_pipeline))

# Zero-shot diagnosis on a labelled split of the same kind of data: AUROC per finding of the
# dataset's classes, and macro (the model's `zero_shot` settings give the prompts).
val_dataloader = dict(
    batch_size=64,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    collate_fn=dict(type='pseudo_collate'),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        ann_file='val.jsonl',
        pipeline=test_pipeline))
val_evaluator = dict(type='AUROC')
test_dataloader = val_dataloader
test_evaluator = val_evaluator
