# Zero-shot FIVES (normal, AMD, DR, glaucoma; softmax over the classes) with ViLReF
# ViT-L/14@336 (Chinese-CLIP's ViT-L/14@336 architecture), on images resized to 336 x 336.
_base_ = ['../_base_/models/vilref_vit-l14-336.py', './_base_/zero_shot_fives.py']

# Prompts are short: 52 tokens hold any template x class name.
model = dict(tokenizer=dict(context_length=52), zero_shot={{_base_.zero_shot}})

# The release's test transform at the model's resolution: 336 x 336, PIL bicubic.
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(336, 336), interpolation='bicubic', backend='pillow'),
    dict(type='PackInputs'),
]
test_dataloader = dict(dataset=dict(pipeline=test_pipeline))
