# ViLReF pre-training: ModifiedResNet-50 + the 3-layer RBT3 text encoder (Chinese-CLIP's RN50),
# D = 1024, with the recipe of pretrain_vitb.py: WSCL with momentum encoders and a 65,536-entry
# memory queue, 8 GPUs x 32, zero-shot AUROC validation (docs/pretrain.md). Both towers are
# small: no gradient checkpointing.
#   bash tools/dist_train.sh \
#       configs/vilref/vilref_rn50-rbt3_8xb32-20e_fundus-reports-224px.py 8 --amp
_base_ = [
    '../_base_/models/vilref_rn50-rbt3.py',
    '../_base_/datasets/image_report_pretrain.py',
    '../_base_/schedules/vilref_pretrain.py',
    '../_base_/default_runtime.py',
]

model = dict(
    queue_size=65536,  # a multiple of the global batch (256)
    num_classes=25,  # the default label set (docs/labels.md)
    zero_shot=dict(mode='multilabel'),
)

# Each sample's augmentation seeded from its position in the epoch (SampleIndex): a resumed
# run draws the same crops and jitter as the uninterrupted one, whatever num_workers.
train_dataloader = dict(sampler=dict(type='SeededDefaultSampler'))

# Start from Chinese-CLIP's RN50 converted with
#   python tools/model_converters/vilref_to_mm.py clip_cn_rn50.pt \
#       checkpoints/cnclip_rn50.pth
# load_from = 'checkpoints/cnclip_rn50.pth'
