# Loss ablation (docs/method.md): hard false-negative elimination, w = 0 for pairs with the
# anchor's findings (label cosine >= 1 - 1e-6), w = 1 for all others.
_base_ = ['../vilref_vit-tiny-p16_1xb32-450it_synthetic-112px.py']

model = dict(loss=dict(_delete_=True, type='WeightedSimilarityCouplingLoss', gamma=0.0,
                       hard=True))
