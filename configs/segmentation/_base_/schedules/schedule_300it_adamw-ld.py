# A 300-iteration schedule for the CPU demo: AdamW, 20 warm-up iterations, linear decay to 0,
# mild layer-wise learning-rate decay (0.9 per block) for a pre-trained small ViT.
_base_ = ['./schedule_40kit_adamw-ld.py']

max_iters = 300
optim_wrapper = dict(optimizer=dict(lr=1e-3), paramwise_cfg=dict(layer_decay_rate=0.9))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0, end=20),
    dict(type='PolyLR', eta_min=0., power=1.0, by_epoch=False, begin=20, end=max_iters)
]
train_cfg = dict(max_iters=max_iters, val_interval=max_iters)
default_hooks = dict(logger=dict(interval=20), checkpoint=dict(interval=max_iters))
