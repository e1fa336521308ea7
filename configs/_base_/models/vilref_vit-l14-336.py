# ViLReF ViT-L/14@336: the ViT-L/14 model with position embeddings for 336 px (24 x 24
# patches), D = 768: the architecture of Chinese-CLIP's ViT-L/14@336 release
# (clip_cn_vit-l-14-336.pt, cn_clip's ViT-L-14-336@RoBERTa-wwm-ext-base-chinese).
_base_ = ['./vilref_vit-l14.py']

model = dict(image_encoder=dict(img_size=336))
