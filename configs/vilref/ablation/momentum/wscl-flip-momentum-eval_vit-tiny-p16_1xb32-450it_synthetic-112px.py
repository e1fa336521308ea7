# Momentum-mode ablation (docs/method.md): as the train-mode config, but the momentum towers
# encode in eval mode (no dropout, no FLIP masks) while the online towers train.
_base_ = ['./wscl-flip-momentum-train_vit-tiny-p16_1xb32-450it_synthetic-112px.py']

model = dict(momentum_eval=True)
