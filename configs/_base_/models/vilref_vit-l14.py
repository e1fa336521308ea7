# ViLReF ViT-L/14: CLIP ViT-L/14 image encoder (224 px) + RoBERTa-wwm-ext-base-chinese text
# encoder, D = 768: the architecture of Chinese-CLIP's ViT-L/14 release (clip_cn_vit-l-14.pt,
# cn_clip's ViT-L-14@RoBERTa-wwm-ext-base-chinese). The text encoder, tokenizer, loss and data
# preprocessor are the ViT-B/16 model's.
_base_ = ['./vilref_vit-b16.py']

model = dict(
    image_encoder=dict(
        arch='l',  # 1024 wide, 24 blocks, 16 heads of 64, MLP 4096
        patch_size=14),  # 16 x 16 patches at 224 px
    embed_dims=768)  # image 1024 -> 768, text 768 -> 768
