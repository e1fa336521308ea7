# tiny_vilref_random.py trained by epochs as the pre-training configs are (EpochBasedTrainLoop,
# SeededDefaultSampler, a checkpoint every epoch): 3 epochs of 2 iterations (8 samples).
_base_ = ['./tiny_vilref_random.py']

train_dataloader = dict(dataset=dict(indices=8), sampler=dict(type='SeededDefaultSampler'))
train_cfg = dict(_delete_=True, type='EpochBasedTrainLoop', max_epochs=3, val_interval=1)
default_hooks = dict(checkpoint=dict(by_epoch=True, interval=1))
