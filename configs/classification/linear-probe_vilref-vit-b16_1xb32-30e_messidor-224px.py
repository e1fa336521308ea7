# Linear probe of the ViLReF ViT-B/16 image encoder on MESSIDOR diabetic retinopathy grading
# (grades 0-3, softmax): the encoder frozen, a linear head on ln_post(CLS) (768-d), trained on
# images of the test transform (docs/transfer.md).
#   python tools/train.py \
#       configs/classification/linear-probe_vilref-vit-b16_1xb32-30e_messidor-224px.py
_base_ = [
    './_base_/models/vilref-vit-b16.py',
    './_base_/datasets/messidor_224px.py',
    './_base_/schedules/linear-probe_adamw_30e.py',
    '../_base_/default_runtime.py',
]

model = dict(
    backbone=dict(frozen_stages=12),  # all 12 blocks, the embeddings and ln_post
    head=dict(
        type='LinearClsHead',
        num_classes=4,
        in_channels=768,
        loss=dict(type='CrossEntropyLoss'),
        topk=(1, )))

train_dataloader = dict(dataset=dict(pipeline=_base_.test_pipeline))
