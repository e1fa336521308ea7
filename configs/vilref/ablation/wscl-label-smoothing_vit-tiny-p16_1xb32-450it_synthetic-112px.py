# Loss ablation (docs/method.md): WSCL with label smoothing 0.1 spread over the candidates that
# are not eliminated.
_base_ = ['../vilref_vit-tiny-p16_1xb32-450it_synthetic-112px.py']

model = dict(loss=dict(_delete_=True, type='WeightedSimilarityCouplingLoss', gamma=1.0,
                       label_smoothing=0.1))
