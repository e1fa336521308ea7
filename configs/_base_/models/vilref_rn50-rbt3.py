# Chinese-CLIP RN50: CLIP ModifiedResNet-50 (attention pool 2048 -> 1024) + the 3-layer RBT3
# text encoder (RoBERTa-wwm-ext-base-chinese's width, 3 layers), D = 1024: the architecture of
# Chinese-CLIP's RN50 release (clip_cn_rn50.pt). ViLReF's own RN50 (vilref_rn50.py) has the
# 12-layer text encoder instead.
_base_ = ['./vilref_rn50.py']

model = dict(text_encoder=dict(bert_cfg=dict(num_hidden_layers=3)))
