# Full fine-tuning of the ViLReF ViT-B/16 image encoder on RFMiD 1.0 (45 diseases, multi-label,
# BCE): encoder lr 1e-6, head lr 1e-3 (method.md, docs/transfer.md).
#   python tools/train.py \
#       configs/classification/finetune_vilref-vit-b16_1xb32-30e_rfmid-224px.py
_base_ = [
    './_base_/models/vilref-vit-b16.py',
    './_base_/datasets/rfmid_224px.py',
    './_base_/schedules/finetune_adamw_30e.py',
    '../_base_/default_runtime.py',
]

model = dict(
    head=dict(
        type='MultiLabelLinearClsHead',
        num_classes=45,
        in_channels=768,
        loss=dict(type='CrossEntropyLoss', use_sigmoid=True)))
