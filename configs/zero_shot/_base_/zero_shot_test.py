# What every zero-shot config shares, without a model: the runtime, the release's test
# transform (224 x 224, PIL bicubic; a 336 px model sets its own) and the test loop.
# Run: python tools/test.py configs/zero_shot/<config>.py CHECKPOINT (docs/zero_shot.md).
_base_ = ['../../_base_/default_runtime.py']

test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(224, 224), interpolation='bicubic', backend='pillow'),
    dict(type='PackInputs'),
]
test_dataloader = dict(
    batch_size=64,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(pipeline=test_pipeline))
test_cfg = dict()

default_hooks = dict(logger=dict(type='LoggerHook', interval=20))
