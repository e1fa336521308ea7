# Zero-shot REFUGE glaucoma classification (normal vs glaucoma, softmax over both prompts).
_base_ = ['./_base_/zero_shot_vit-b16.py']

class_names = dict(
    normal=['正常眼底', '视盘未见明显异常'],
    glaucoma=['青光眼', '青光眼性视神经病变', '视杯扩大'],
)

model = dict(zero_shot=dict(class_names=class_names, mode='multiclass'))

# REFUGE1 test: the label sheet (exported as CSV) and the 400 images. For Training400 set
# ann_file='' and data_prefix='Training400/' (its Glaucoma/ and Non-Glaucoma/ folders).
test_dataloader = dict(
    dataset=dict(
        type='REFUGEGlaucomaDataset',
        data_root='data/REFUGE/',
        ann_file='REFUGE-Test-GT/Glaucoma_label_and_Fovea_location.csv',
        data_prefix='REFUGE-Test400/Test400/'))
# auroc/glaucoma is the glaucoma AUROC (auroc/macro averages it with its mirror image).
test_evaluator = [
    dict(type='AUROC'),
    dict(type='Accuracy', topk=(1, )),
]
