# The CPU demo (`make demo`): a small ViLReF pre-trained with WSCL and the memory queue on the
# built-in synthetic fundus dataset in a few minutes on 2 cores. Generate the data with
#   python tools/data/make_synthetic_fundus.py work_dirs/demo/data --size 112
_base_ = ['./pretrain_vitb.py']

data_root = 'work_dirs/demo/data/'
img_size = 112

model = dict(
    image_encoder=dict(
        arch=dict(
            _delete_=True, embed_dims=192, num_layers=4, num_heads=3, feedforward_channels=768),
        img_size=img_size,
        drop_path_rate=0.),
    # The full 21,128-token vocabulary, two small BERT layers.
    text_encoder=dict(
        bert_cfg=dict(hidden_size=256, num_hidden_layers=2, num_attention_heads=4,
                      intermediate_size=1024)),
    embed_dims=256,
    tokenizer=dict(context_length=64),
    queue_size=1024,  # 32 batches
)

report_tokenizer = dict(type='ChineseBertTokenizer', context_length=64)
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
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(data_root=data_root, ann_file='train.jsonl', pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=64,
    num_workers=1,
    dataset=dict(data_root=data_root, ann_file='val.jsonl', pipeline=test_pipeline))
test_dataloader = dict(
    batch_size=64,
    num_workers=1,
    dataset=dict(data_root=data_root, ann_file='test.jsonl', pipeline=test_pipeline))

# From scratch: a larger learning rate, a short warm-up, cosine decay over 600 iterations.
optim_wrapper = dict(optimizer=dict(lr=5e-4, weight_decay=0.05))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-2, by_epoch=False, begin=0, end=50),
    dict(type='CosineAnnealingLR', by_epoch=False, begin=50, end=600, eta_min=1e-5),
]
train_cfg = dict(_delete_=True, type='IterBasedTrainLoop', max_iters=600, val_interval=600)
auto_scale_lr = dict(base_batch_size=32)

default_hooks = dict(
    logger=dict(type='LoggerHook', interval=20),
    checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=300, max_keep_ckpts=1))
env_cfg = dict(dist_cfg=dict(backend='gloo'))
log_processor = dict(by_epoch=False)
