# A seconds-long ViLReF pre-training job (WSCL, momentum towers, memory queue) for tests on CPU.
# Deterministic: no dropout, no random augmentation. Point the dataloaders' data_root at a
# synthetic fundus dataset (tools/data/make_synthetic_fundus.py) with --cfg-options.
_base_ = ['../../../configs/vilref/vilref_vit-tiny-p16_1xb32-450it_synthetic-112px.py']

img_size = 32
model = dict(
    image_encoder=dict(
        arch=dict(embed_dims=32, num_layers=1, num_heads=2, feedforward_channels=64),
        img_size=img_size),
    text_encoder=dict(
        bert_cfg=dict(hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                      intermediate_size=64, hidden_dropout_prob=0.,
                      attention_probs_dropout_prob=0.)),
    embed_dims=16,
    tokenizer=dict(context_length=32),
    queue_size=16,
)
# The queue from the first iteration (the demo's warm-up is longer than these runs).
custom_hooks = [
    dict(type='MomentumUpdateHook', momentum=0.99),
    dict(type='MemoryQueueHook', warmup_iters=0),
]
report_tokenizer = dict(type='ChineseBertTokenizer', context_length=32)
pipeline = [
    dict(type='LoadImageFromRecord'),
    dict(type='Resize', scale=(img_size, img_size), interpolation='bicubic', backend='pillow'),
    dict(type='TokenizeReport', tokenizer=report_tokenizer),
    dict(type='PackImageReportInputs'),
]
train_dataloader = dict(batch_size=4, num_workers=0, persistent_workers=False,
                        dataset=dict(pipeline=pipeline))
val_dataloader = dict(batch_size=8, num_workers=0, persistent_workers=False,
                      dataset=dict(pipeline=pipeline))
test_dataloader = val_dataloader
param_scheduler = [dict(type='CosineAnnealingLR', by_epoch=False, begin=0, end=6)]
train_cfg = dict(max_iters=6, val_interval=100)
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=1),
    checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=3, max_keep_ckpts=3))
