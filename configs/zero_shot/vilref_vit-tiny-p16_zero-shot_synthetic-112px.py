# Zero-shot diagnosis on the synthetic test split with the demo's model: each of the 25
# findings against "normal", scored against the generator's ground truth. `make demo` writes
# the weights and `test_findings.jsonl` (the test split with the generator's findings as
# labels, so the report labeler plays no part in the evaluation):
#   python tools/test.py configs/zero_shot/vilref_vit-tiny-p16_zero-shot_synthetic-112px.py \
#       work_dirs/demo/pretrain/weights.pth
_base_ = ['../vilref/vilref_vit-tiny-p16_1xb32-450it_synthetic-112px.py']

test_dataloader = dict(dataset=dict(ann_file='test_findings.jsonl'))
test_evaluator = [
    dict(type='AUROC'),
    dict(type='AveragePrecision'),
]
