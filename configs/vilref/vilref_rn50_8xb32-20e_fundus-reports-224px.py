# ViLReF pre-training: ModifiedResNet-50 + RoBERTa-wwm-ext-base-chinese (12 layers), D = 1024,
# with the recipe of pretrain_vitb.py: WSCL with momentum encoders and a 65,536-entry memory
# queue, 8 GPUs x 32, zero-shot AUROC validation (docs/pretrain.md).
#   python tools/train.py configs/vilref/pretrain_rn50.py --amp \
#       --cfg-options train_dataloader.dataset.data_root=data/fundus_reports/
_base_ = [
    '../_base_/models/vilref_rn50.py',
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

# Start from ViLReF RN50 weights converted with
#   python tools/model_converters/vilref_to_mm.py ViLReF_RN50.pt checkpoints/vilref_rn50.pth
# (Chinese-CLIP's RN50 release has a 3-layer RBT3 text encoder: its recipe is
#  vilref_rn50-rbt3_8xb32-20e_fundus-reports-224px.py.)
# load_from = 'checkpoints/vilref_rn50.pth'
