# Few-shot linear probe on MESSIDOR diabetic retinopathy grading (grades 0-3, softmax): 1 % of
# the training samples (FewShotDataset, seed 0, every class represented), repeated 100 times an
# epoch so that the schedule takes as many iterations as on the whole training set.
_base_ = ['../linear-probe_vilref-vit-b16_1xb32-30e_messidor-224px.py']

train_dataloader = dict(
    dataset=dict(
        _delete_=True,
        type='RepeatDataset',
        times=100,
        dataset=dict(
            type='FewShotDataset',
            fraction=0.01,
            seed=0,
            dataset=_base_.train_dataloader.dataset)))
