# ViLReF ViT-B/16 for zero-shot diagnosis: the dataset configs of configs/zero_shot/ add the
# class names, the dataset and the metrics.
_base_ = ['../../_base_/models/vilref_vit-b16.py', './zero_shot_test.py']

# Prompts are short: 52 tokens hold any template x class name.
model = dict(tokenizer=dict(context_length=52))
