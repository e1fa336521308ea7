# Zero-shot FIVES (normal, AMD, DR, glaucoma; softmax over the classes) with ViLReF ViT-B/16.
_base_ = ['../_base_/models/vilref_vit-b16.py', './_base_/zero_shot_fives.py']

# Prompts are short: 52 tokens hold any template x class name.
model = dict(tokenizer=dict(context_length=52), zero_shot={{_base_.zero_shot}})
