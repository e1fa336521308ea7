# Loss ablation (docs/method.md): CLIP logits with soft targets from label similarity (the FLAIR
# / MedCLIP family), row-normalised label cosines, no one-hot share.
_base_ = ['../vilref_vit-tiny-p16_1xb32-450it_synthetic-112px.py']

model = dict(loss=dict(_delete_=True, type='LabelSoftTargetLoss', similarity='cosine',
                       one_hot_weight=0.0))
