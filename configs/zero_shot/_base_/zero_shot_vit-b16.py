# What the zero-shot configs share: ViLReF ViT-B/16, the test pipeline and the test loop.
# Run: python tools/test.py configs/zero_shot/<config>.py CHECKPOINT (docs/zero_shot.md).
_base_ = ['../../_base_/models/vilref_vit-b16.py', '../../_base_/default_runtime.py']

# Prompts are short: 52 tokens hold any template x class name.
model = dict(tokenizer=dict(context_length=52))

# The release's test transform: resize to 224 x 224, PIL bicubic.
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
