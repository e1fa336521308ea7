# Momentum-mode ablation (docs/method.md): the demo's pre-training with the regularisers a
# research recipe has (FLIP patch dropout 0.5, drop path 0.1, text dropout 0.1), the momentum
# towers encoding the queue's features in train mode, so with dropout and FLIP masks.
_base_ = ['../../vilref_vit-tiny-p16_1xb32-450it_synthetic-112px.py']

model = dict(
    image_encoder=dict(mask_ratio=0.5, drop_path_rate=0.1),
    text_encoder=dict(bert_cfg=dict(hidden_dropout_prob=0.1)),
    momentum_eval=False)
