# The CPU demo (`make demo`): a small ViLReF pre-trained with WSCL and the memory queue on the
# built-in synthetic fundus dataset in a few minutes on 2 cores. Generate the data with
#   python tools/data/make_synthetic_fundus.py work_dirs/demo/data --size 112
_base_ = ['./vilref_vit-b16_8xb32-20e_fundus-reports-224px.py']

data_root = 'work_dirs/demo/data/'
img_size = 112
context_length = 128

# Both towers are narrow and shallow for 2 CPU cores: 3 ViT blocks 192 wide with a 2x MLP,
# two BERT layers 128 wide with a 2x feed-forward layer. Against 4 blocks and 4x MLPs in both
# towers, a step costs 37 % less and the zero-shot macro AUROC was 0.821 instead of 0.812
# after 500 iterations (docs/demo.md): the synthetic findings need the pairs seen, not the
# width (batch 24 gave 0.794, 350 iterations 0.795).
model = dict(
    image_encoder=dict(
        arch=dict(
            _delete_=True, embed_dims=192, num_layers=3, num_heads=3, feedforward_channels=384),
        img_size=img_size,
        drop_path_rate=0.),
    # The full 21,128-token vocabulary, no dropout (on CPU, dropout made the text tower 2.5x
    # slower). Mean pooling: from scratch, [CLS] starts out nearly the same for every report
    # and learning starts later.
    text_encoder=dict(
        bert_cfg=dict(hidden_size=128, num_hidden_layers=2, num_attention_heads=2,
                      intermediate_size=256, hidden_dropout_prob=0.,
                      attention_probs_dropout_prob=0.),
        pooling='mean'),
    embed_dims=256,
    # The synthetic reports are 73 characters long in the median, 129 at the 99th
    # percentile; the diagnosis comes last, so a shorter context would cut it off.
    tokenizer=dict(context_length=context_length),
    queue_size=1024,  # 32 batches
)

report_tokenizer = dict(type='ChineseBertTokenizer', context_length=context_length)
train_pipeline = [
    dict(type='LoadImageFromRecord'),
    dict(type='RandomResizedCrop', scale=img_size, crop_ratio_range=(0.9, 1.0),
         interpolation='bicubic', backend='pillow'),
    dict(type='ColorJitter', brightness=0.1, contrast=0.1, saturation=0.1),
    dict(type='TokenizeReport', tokenizer=report_tokenizer),
    dict(type='PackImageReportInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromRecord'),
    dict(type='Resize', scale=(img_size, img_size), interpolation='bicubic', backend='pillow'),
    dict(type='TokenizeReport', tokenizer=report_tokenizer),
    dict(type='PackImageReportInputs'),
]

train_dataloader = dict(
    batch_size=32,
    num_workers=1,
    persistent_workers=True,
    # Each sample's augmentation is seeded by its position: the same for any num_workers.
    sampler=dict(type='SeededInfiniteSampler', shuffle=True),
    dataset=dict(data_root=data_root, ann_file='train.jsonl', pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=64,
    num_workers=1,
    dataset=dict(data_root=data_root, ann_file='val.jsonl', pipeline=test_pipeline))
test_dataloader = dict(
    batch_size=64,
    num_workers=1,
    dataset=dict(data_root=data_root, ann_file='test.jsonl', pipeline=test_pipeline))

# From scratch: a larger learning rate, a short warm-up, cosine decay over 450 iterations.
optim_wrapper = dict(optimizer=dict(lr=5e-4, weight_decay=0.05))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-2, by_epoch=False, begin=0, end=38),
    dict(type='CosineAnnealingLR', by_epoch=False, begin=38, end=450, eta_min=1e-5),
]
train_cfg = dict(_delete_=True, type='IterBasedTrainLoop', max_iters=450, val_interval=450)
# The queue joins once the towers have left their initial state: the first 90 batches are
# in-batch only (no momentum pass), then the momentum towers (m = 0.99, a memory of about
# 100 iterations for a run this short) fill the queue.
custom_hooks = [
    dict(type='MomentumUpdateHook', momentum=0.99),
    dict(type='MemoryQueueHook', warmup_iters=90),
    dict(type='LogitScaleClampHook'),
]
auto_scale_lr = dict(base_batch_size=32)

default_hooks = dict(
    logger=dict(type='LoggerHook', interval=20),
    checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=450, max_keep_ckpts=1))
env_cfg = dict(dist_cfg=dict(backend='gloo'))
log_processor = dict(by_epoch=False)
