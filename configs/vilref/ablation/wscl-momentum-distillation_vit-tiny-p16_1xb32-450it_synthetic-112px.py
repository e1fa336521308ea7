# Loss ablation (docs/method.md): WSCL with ALBEF-style momentum distillation, targets
# 0.4 x the momentum towers' softmax over batch + queue + 0.6 x the positive, alpha ramped up
# over the first epoch (2,000 training images / 32 = 62 iterations).
_base_ = ['../vilref_vit-tiny-p16_1xb32-450it_synthetic-112px.py']

model = dict(loss=dict(_delete_=True, type='MomentumDistillationLoss', alpha=0.4,
                       ramp_iters=62, gamma=1.0))
