# Loss ablation (docs/method.md): WSCL with the scale-aware soft Jaccard label similarity
# (sum of minima over sum of maxima): an uncertain (0.5) and a certain (1.0) finding of the same
# class give w = 0.5 instead of being eliminated.
_base_ = ['../vilref_vit-tiny-p16_1xb32-450it_synthetic-112px.py']

model = dict(loss=dict(_delete_=True, type='WeightedSimilarityCouplingLoss', gamma=1.0,
                       similarity='soft_jaccard'))
