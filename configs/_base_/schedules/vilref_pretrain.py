# ViLReF pre-training schedule (method.md): AdamW, lr 3e-5 with 100 warm-up iterations and
# cosine decay, 20 epochs; no weight decay on norms, biases, embeddings and logit_scale;
# after every optimizer step (also with optim_wrapper.accumulative_counts > 1) the momentum
# towers' EMA, the memory queue filled from the first step (both hooks need a model with
# queue_size > 0; remove them for queue_size=0) and logit_scale clamped to [0, log 100].
# bf16 autocast with `tools/train.py --amp`.
optim_wrapper = dict(
    type='OptimWrapper',
    # fused: one kernel for all parameters (5x faster than the foreach step on CPU, measured
    # in docs/benchmark.md; not yet measured on a GPU).
    optimizer=dict(type='AdamW', lr=3e-5, betas=(0.9, 0.98), eps=1e-6, weight_decay=0.001,
                   fused=True),
    paramwise_cfg=dict(
        norm_decay_mult=0.,
        bias_decay_mult=0.,
        custom_keys={
            'cls_token': dict(decay_mult=0.),
            'pos_embed': dict(decay_mult=0.),
            'embeddings': dict(decay_mult=0.),
            'logit_scale': dict(decay_mult=0.),
        }),
)

param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0, end=100),
    dict(type='CosineAnnealingLR', by_epoch=True, begin=0, end=20, eta_min=0.,
         convert_to_iter_based=True),
]

train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=20, val_interval=1)
val_cfg = dict()
test_cfg = dict()
# The release trained on 8 GPUs x 32 samples.
auto_scale_lr = dict(base_batch_size=256)

custom_hooks = [
    dict(type='MomentumUpdateHook', momentum=0.995),
    dict(type='MemoryQueueHook', warmup_iters=0),
    dict(type='LogitScaleClampHook'),
]
