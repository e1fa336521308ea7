# Few-shot linear probe on REFUGE glaucoma classification (normal, glaucoma; softmax): 20 % of
# the training samples (FewShotDataset, seed 0, every class represented), repeated 5 times an
# epoch so that the schedule takes as many iterations as on the whole training set.
_base_ = ['../linear-probe_vilref-vit-b16_1xb32-30e_refuge-glaucoma-224px.py']

train_dataloader = dict(
    dataset=dict(
        _delete_=True,
        type='RepeatDataset',
        times=5,
        dataset=dict(
            type='FewShotDataset',
            fraction=0.2,
            seed=0,
            dataset=_base_.train_dataloader.dataset)))
