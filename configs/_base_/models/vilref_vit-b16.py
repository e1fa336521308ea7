# ViLReF ViT-B/16: CLIP ViT-B/16 image encoder + RoBERTa-wwm-ext-base-chinese text encoder,
# joint embedding D = 512 (the architecture of the ViLReF and Chinese-CLIP ViT-B/16 releases).
model = dict(
    type='ViLReF',
    image_encoder=dict(
        type='ViLReFViT',
        arch='b',
        img_size=224,
        patch_size=16,
        out_type='cls_token',  # ln_post(CLS), 768-d
        mask_ratio=0.,  # FLIP patch dropout in training
        with_cp=False),
    image_projection=True,  # 768 -> 512, x @ W
    text_encoder=dict(type='ChineseBertEncoder', with_cp=False),
    embed_dims=512,
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
