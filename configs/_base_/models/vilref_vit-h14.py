# ViLReF ViT-H/14: CLIP ViT-H/14 image encoder (224 px) + RoBERTa-wwm-ext-large-chinese text
# encoder, D = 1024: the architecture of Chinese-CLIP's ViT-H/14 release (clip_cn_vit-h-14.pt,
# cn_clip's ViT-H-14@RoBERTa-wwm-ext-large-chinese).
_base_ = ['./vilref_vit-l14.py']

model = dict(
    # 1280 wide, 32 blocks, MLP 5120, 16 heads of 80 (Chinese-CLIP's vision_head_width);
    # patch 14 as ViT-L/14
    image_encoder=dict(arch='h'),
    # RoBERTa-wwm-ext-large-chinese: the base encoder's vocabulary, positions, dropout and
    # LayerNorm eps with 24 layers 1024 wide (16 heads of 64, FFN 4096)
    text_encoder=dict(
        bert_cfg=dict(hidden_size=1024, num_hidden_layers=24, num_attention_heads=16,
                      intermediate_size=4096)),
    embed_dims=1024)  # image 1280 -> 1024, text 1024 -> 1024
