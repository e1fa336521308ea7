# Zero-shot FIVES (normal, AMD, DR, glaucoma; softmax over the classes) without a model: each
# FIVES config combines a model from configs/_base_/models/ with this file and sets
#   model = dict(tokenizer=dict(context_length=52), zero_shot={{_base_.zero_shot}})
_base_ = ['./zero_shot_test.py']

class_names = dict(
    normal=['正常眼底', '眼底未见明显异常'],
    amd=['年龄相关性黄斑变性', '老年性黄斑变性'],
    diabetic_retinopathy=['糖尿病视网膜病变', '糖尿病性视网膜病变'],
    glaucoma=['青光眼', '青光眼性视神经病变'],
)
zero_shot = dict(class_names=class_names, mode='multiclass')  # softmax over the classes

# FIVES as distributed: {train,test}/Original/{n}_{N|A|D|G}.png.
test_dataloader = dict(
    dataset=dict(type='FIVESDataset', data_root='data/FIVES/', split='test'))
test_evaluator = [
    dict(type='AUROC'),
    dict(type='Accuracy', topk=(1, )),
    dict(type='SingleLabelMetric', items=('f1-score', ), average='macro'),
]
