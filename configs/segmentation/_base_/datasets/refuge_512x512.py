# mmseg's refuge.py (512 x 512 training crops already) with mDice + mIoU, per class too.
_base_ = ['mmseg::_base_/datasets/refuge.py']

val_evaluator = dict(type='PerClassIoUMetric', iou_metrics=['mDice', 'mIoU'])
test_evaluator = val_evaluator
