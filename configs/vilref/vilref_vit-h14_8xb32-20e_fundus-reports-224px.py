# ViLReF pre-training: ViT-H/14 + RoBERTa-wwm-ext-large-chinese (Chinese-CLIP's ViT-H/14),
# D = 1024, with the recipe of pretrain_vitb.py: WSCL with momentum encoders and a 65,536-entry
# memory queue, 8 GPUs x 32, zero-shot AUROC validation (docs/pretrain.md).
#   bash tools/dist_train.sh \
#       configs/vilref/vilref_vit-h14_8xb32-20e_fundus-reports-224px.py 8 --amp
_base_ = [
    '../_base_/models/vilref_vit-h14.py',
    '../_base_/datasets/image_report_pretrain.py',
    '../_base_/schedules/vilref_pretrain.py',
    '../_base_/default_runtime.py',
]

model = dict(
    # Both towers are large (32 blocks 1280 wide, 24 layers 1024 wide): every block and layer
    # is recomputed in backward instead of storing its activations.
    image_encoder=dict(with_cp=True),
    text_encoder=dict(with_cp=True),
    queue_size=65536,  # a multiple of the global batch (256)
    num_classes=25,  # the default label set (docs/labels.md)
    zero_shot=dict(mode='multilabel'),
)

# Each sample's augmentation seeded from its position in the epoch (SampleIndex): a resumed
# run draws the same crops and jitter as the uninterrupted one, whatever num_workers.
train_dataloader = dict(sampler=dict(type='SeededDefaultSampler'))

# Start from Chinese-CLIP's ViT-H/14 converted with
#   python tools/model_converters/vilref_to_mm.py clip_cn_vit-h-14.pt \
#       checkpoints/cnclip_vith14.pth
# load_from = 'checkpoints/cnclip_vith14.pth'
