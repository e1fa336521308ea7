# ViLReF RN50: CLIP ModifiedResNet-50 (attention pool projects 2048 -> 1024) + the 12-layer
# RoBERTa-wwm-ext-base-chinese text encoder (not Chinese-CLIP RN50's 3-layer RBT3), D = 1024.
model = dict(
    type='ViLReF',
    image_encoder=dict(
        type='ViLReFModifiedResNet',
        stage_blocks=(3, 4, 6, 3),
        output_dim=1024,
        img_size=224,
        out_indices=4,  # the attention-pool output, 1024-d
        with_cp=False),
    image_projection=False,  # the attention pool projects
    text_encoder=dict(type='ChineseBertEncoder', with_cp=False),
    embed_dims=1024,
    tokenizer=dict(type='ChineseBertTokenizer', context_length=100),
    loss=dict(type='WeightedSimilarityCouplingLoss', gamma=1.0),
    # True: the momentum towers (with queue_size > 0) encode in eval mode, without dropout
    # and FLIP patch dropout (docs/method.md).
    momentum_eval=False,
    data_preprocessor=dict(
        type='ViLReFDataPreprocessor',
        mean=[122.7709383, 116.7460125, 104.09373615],  # CLIP's, x 255, RGB
        std=[68.5005327, 66.6321579, 70.32316305],
        to_rgb=True))
