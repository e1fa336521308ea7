# Zero-shot FIVES (normal, AMD, DR, glaucoma; softmax over the classes).
_base_ = ['./_base_/zero_shot_vit-b16.py']

class_names = dict(
    normal=['正常眼底', '眼底未见明显异常'],
    amd=['年龄相关性黄斑变性', '老年性黄斑变性'],
    diabetic_retinopathy=['糖尿病视网膜病变', '糖尿病性视网膜病变'],
    glaucoma=['青光眼', '青光眼性视神经病变'],
)

model = dict(zero_shot=dict(class_names=class_names, mode='multiclass'))

# FIVES as distributed: {train,test}/Original/{n}_{N|A|D|G}.png.
test_dataloader = dict(
    dataset=dict(type='FIVESDataset', data_root='data/FIVES/', split='test'))
test_evaluator = [
    dict(type='AUROC'),
    dict(type='Accuracy', topk=(1, )),
    dict(type='SingleLabelMetric', items=('f1-score', ), average='macro'),
]
