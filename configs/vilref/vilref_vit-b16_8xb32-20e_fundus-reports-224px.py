# ViLReF pre-training: ViT-B/16 + RoBERTa-wwm-ext-base-chinese, WSCL with momentum encoders
# and a 65,536-entry memory queue, 8 GPUs x 32, zero-shot AUROC validation (docs/pretrain.md).
#   python tools/train.py configs/vilref/pretrain_vitb.py --amp \
#       --cfg-options train_dataloader.dataset.data_root=data/fundus_reports/
#   bash tools/dist_train.sh configs/vilref/pretrain_vitb.py 8 --amp
_base_ = [
    '../_base_/models/vilref_vit-b16.py',
    '../_base_/datasets/image_report_pretrain.py',
    '../_base_/schedules/vilref_pretrain.py',
    '../_base_/default_runtime.py',
]

model = dict(
    queue_size=65536,  # a multiple of the global batch (256)
    num_classes=25,  # the default label set (docs/labels.md)
    # Zero-shot validation over the default label set: each finding against the "normal"
    # prompt (docs/zero_shot.md).
    zero_shot=dict(mode='multilabel'),
)

# Each sample's augmentation seeded from its position in the epoch (SampleIndex): a resumed
# run draws the same crops and jitter as the uninterrupted one, whatever num_workers.
train_dataloader = dict(sampler=dict(type='SeededDefaultSampler'))

# Start from Chinese-CLIP (or ViLReF / RET-CLIP) weights converted with
#   python tools/model_converters/vilref_to_mm.py clip_cn_vit-b-16.pt checkpoints/cnclip_vitb16.pth
# load_from = 'checkpoints/cnclip_vitb16.pth'
