# Full fine-tuning of the ViLReF ViT-B/16 image encoder on MESSIDOR diabetic retinopathy grading
# (grades 0-3, softmax): encoder lr 1e-6, head lr 1e-3 (method.md, docs/transfer.md).
#   python tools/train.py \
#       configs/classification/finetune_vilref-vit-b16_1xb32-30e_messidor-224px.py
_base_ = [
    './_base_/models/vilref-vit-b16.py',
    './_base_/datasets/messidor_224px.py',
    './_base_/schedules/finetune_adamw_30e.py',
    '../_base_/default_runtime.py',
]

model = dict(
    head=dict(
        type='LinearClsHead',
        num_classes=4,
        in_channels=768,
        loss=dict(type='CrossEntropyLoss'),
        topk=(1, )))
