# Linear probe of the ViLReF ViT-B/16 image encoder on RFMiD 1.0 (45 diseases, multi-label,
# BCE): the encoder frozen, a linear head on ln_post(CLS) (768-d), trained on images of the test
# transform (docs/transfer.md).
#   python tools/train.py \
#       configs/classification/linear-probe_vilref-vit-b16_1xb32-30e_rfmid-224px.py
_base_ = [
    './_base_/models/vilref-vit-b16.py',
    './_base_/datasets/rfmid_224px.py',
    './_base_/schedules/linear-probe_adamw_30e.py',
    '../_base_/default_runtime.py',
]

model = dict(
    backbone=dict(frozen_stages=12),  # all 12 blocks, the embeddings and ln_post
    head=dict(
        type='MultiLabelLinearClsHead',
        num_classes=45,
        in_channels=768,
        loss=dict(type='CrossEntropyLoss', use_sigmoid=True)))

train_dataloader = dict(dataset=dict(pipeline=_base_.test_pipeline))
