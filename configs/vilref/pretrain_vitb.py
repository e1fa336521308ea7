# ViLReF pre-training: ViT-B/16 + RoBERTa-wwm-ext-base-chinese, WSCL with momentum encoders
# and a 65,536-entry memory queue, 8 GPUs x 32 (docs/pretrain.md).
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
    loss=dict(type='WeightedSimilarityCouplingLoss', gamma=1.0),
    queue_size=65536,  # a multiple of the global batch (256)
    num_classes=25,  # the default label set (docs/labels.md)
    # Zero-shot validation over the default label set: each finding against the "normal"
    # prompt (docs/zero_shot.md).
    zero_shot=dict(mode='multilabel'),
)

custom_hooks = [
    dict(type='MomentumUpdateHook', momentum=0.995),
    dict(type='MemoryQueueHook', warmup_iters=0),
]

# Zero-shot diagnosis on a labelled split of the same kind of data.
val_dataloader = dict(
    batch_size=64,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    collate_fn=dict(type='pseudo_collate'),
    dataset=dict(
        type={{_base_.dataset_type}},
        data_root={{_base_.data_root}},
        ann_file='val.jsonl',
        pipeline={{_base_.test_pipeline}}))
val_evaluator = dict(type='AUROC')  # per finding of the dataset's classes, and macro
test_dataloader = val_dataloader
test_evaluator = val_evaluator

# Start from Chinese-CLIP (or ViLReF / RET-CLIP) weights converted with
#   python tools/model_converters/vilref_to_mm.py clip_cn_vit-b-16.pt checkpoints/cnclip_vitb16.pth
# load_from = 'checkpoints/cnclip_vitb16.pth'
