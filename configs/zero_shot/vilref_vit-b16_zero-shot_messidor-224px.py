# Zero-shot MESSIDOR diabetic retinopathy grading (grades 0-3, softmax over the grades).
_base_ = ['./_base_/zero_shot_vit-b16.py']

# MESSIDOR grade definitions: 0 no microaneurysm or haemorrhage; 1 up to 5 microaneurysms;
# 2 more microaneurysms or a few haemorrhages; 3 many lesions or neovascularisation.
class_names = dict(
    grade_0=['眼底未见明显异常', '未见糖尿病视网膜病变'],
    grade_1=['轻度非增殖期糖尿病视网膜病变', '少量微血管瘤'],
    grade_2=['中度非增殖期糖尿病视网膜病变'],
    grade_3=['重度非增殖期糖尿病视网膜病变', '增殖期糖尿病视网膜病变'],
)

model = dict(zero_shot=dict(class_names=class_names, mode='multiclass'))

# The 12 bases as distributed (Base11 ... Base34), each with its annotation table exported
# as CSV (or the .xls when pandas and xlrd are installed).
test_dataloader = dict(
    dataset=dict(
        type='MessidorDataset',
        data_root='data/Messidor/',
        ann_file='Base*/Annotation_Base*.csv',
        target='retinopathy'))
test_evaluator = [
    dict(type='AUROC'),
    dict(type='Accuracy', topk=(1, )),
    dict(type='QuadraticWeightedKappa'),
]
