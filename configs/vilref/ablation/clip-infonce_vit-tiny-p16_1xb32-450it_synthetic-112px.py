# Loss ablation (docs/method.md): plain CLIP InfoNCE, every pair an ordinary negative (WSCL with
# gamma=0). Everything else is the demo's pre-training config, the queue included.
_base_ = ['../vilref_vit-tiny-p16_1xb32-450it_synthetic-112px.py']

model = dict(loss=dict(_delete_=True, type='WeightedSimilarityCouplingLoss', gamma=0.0))
