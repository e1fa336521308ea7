# Zero-shot ODIR-5K (N D G C A H M O, multi-label, both eyes of each patient): each class
# against the "normal" prompt; N is "normal" against the most similar disease.
_base_ = ['./_base_/zero_shot_vit-b16.py']

class_names = dict(
    N=['正常眼底', '眼底未见明显异常'],
    D=['糖尿病视网膜病变', '糖尿病性视网膜病变'],
    G=['青光眼', '青光眼性视神经病变', '视杯扩大'],
    C=['白内障', '屈光间质混浊'],
    A=['年龄相关性黄斑变性', '老年性黄斑变性'],
    H=['高血压视网膜病变', '视网膜动脉硬化'],
    M=['病理性近视', '高度近视眼底改变'],
    O=['眼底病变', '其他眼底异常'],
)

model = dict(zero_shot=dict(class_names=class_names, mode='multilabel'))

# The annotation table (full_df.csv, or the official xlsx exported as CSV) and the images.
# Per-eye labels come from each eye's diagnostic keywords (label_source='patient' gives
# both eyes the patient's N-O labels).
test_dataloader = dict(
    dataset=dict(
        type='ODIRDataset',
        data_root='data/ODIR-5K/',
        ann_file='ODIR-5K_Training_Annotations.csv',
        data_prefix='ODIR-5K_Training_Dataset/',
        label_source='keywords'))
test_evaluator = [
    dict(type='AUROC'),
    dict(type='AveragePrecision'),
    dict(type='MultiLabelMetric', items=('f1-score', ), average='macro'),
]
