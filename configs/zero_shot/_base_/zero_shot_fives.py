# Zero-shot FIVES without a model, for the configs of the Chinese-CLIP family: each combines a
# model from configs/_base_/models/ with this file and sets
#   model = dict(tokenizer=dict(context_length=52), zero_shot={{_base_.zero_shot}})
# The prompts, data, test pipeline and metrics are those of
# vilref_vit-b16_zero-shot_fives-224px.py.
# Run: python tools/test.py configs/zero_shot/<config>.py CHECKPOINT (docs/zero_shot.md).
_base_ = ['../../_base_/default_runtime.py']

class_names = dict(
    normal=['正常眼底', '眼底未见明显异常'],
    amd=['年龄相关性黄斑变性', '老年性黄斑变性'],
    diabetic_retinopathy=['糖尿病视网膜病变', '糖尿病性视网膜病变'],
    glaucoma=['青光眼', '青光眼性视神经病变'],
)
zero_shot = dict(class_names=class_names, mode='multiclass')  # softmax over the classes

# The release's test transform: resize to 224 x 224, PIL bicubic.
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(224, 224), interpolation='bicubic', backend='pillow'),
    dict(type='PackInputs'),
]
# FIVES as distributed: {train,test}/Original/{n}_{N|A|D|G}.png.
test_dataloader = dict(
    batch_size=64,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type='FIVESDataset', data_root='data/FIVES/', split='test',
                 pipeline=test_pipeline))
test_evaluator = [
    dict(type='AUROC'),
    dict(type='Accuracy', topk=(1, )),
    dict(type='SingleLabelMetric', items=('f1-score', ), average='macro'),
]
test_cfg = dict()

default_hooks = dict(logger=dict(type='LoggerHook', interval=20))
