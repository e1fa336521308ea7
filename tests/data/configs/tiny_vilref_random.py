# tiny_vilref.py with the randomness of the real recipe, for exact-resume tests: dropout and
# drop path in both towers, FLIP patch dropout, random crop, flip and colour jitter, one
# persistent worker, per-sample seeded augmentation (SeededInfiniteSampler), the logit-scale
# clamp, and the seed of every rank its own (default_runtime.py). 6 iterations, checkpoints at
# 3 and 6.
_base_ = ['./tiny_vilref.py']

img_size = 32
model = dict(
    image_encoder=dict(mask_ratio=0.5, drop_rate=0.1, drop_path_rate=0.1),
    text_encoder=dict(
        bert_cfg=dict(hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1)))
custom_hooks = [
    dict(type='MomentumUpdateHook', momentum=0.99),
    dict(type='MemoryQueueHook', warmup_iters=0),
    dict(type='LogitScaleClampHook'),
]
report_tokenizer = dict(type='ChineseBertTokenizer', context_length=32)
train_pipeline = [
    dict(type='LoadImageFromRecord'),
    dict(type='RandomResizedCrop', scale=img_size, crop_ratio_range=(0.5, 1.0),
         interpolation='bicubic', backend='pillow'),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='ColorJitter', brightness=0.4, contrast=0.4, saturation=0.4),
    dict(type='TokenizeReport', tokenizer=report_tokenizer),
    dict(type='PackImageReportInputs'),
]
train_dataloader = dict(
    num_workers=1, persistent_workers=True,
    sampler=dict(type='SeededInfiniteSampler', shuffle=True),
    dataset=dict(pipeline=train_pipeline))
# A validation after the checkpoint of iteration 3, which a run resumed from it skips.
train_cfg = dict(val_interval=3)
# The loss of each iteration, not a running mean.
log_processor = dict(window_size=1)
