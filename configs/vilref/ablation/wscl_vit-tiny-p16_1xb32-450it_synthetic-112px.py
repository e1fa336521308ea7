# Loss ablation (docs/method.md): WSCL as the demo trains it, w = 1 - cos(y_i, y_j),
# identical findings eliminated.
_base_ = ['../vilref_vit-tiny-p16_1xb32-450it_synthetic-112px.py']

model = dict(loss=dict(_delete_=True, type='WeightedSimilarityCouplingLoss', gamma=1.0))
