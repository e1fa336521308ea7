# ViLReF pre-training, ViT-B/16 + RoBERTa-wwm-ext-base-chinese.
_base_ = ['../_base_/models/vilref_vit-b16.py']

default_scope = 'mmpretrain'
custom_imports = dict(imports=['vilref_mm'], allow_failed_imports=False)

# Start from Chinese-CLIP (or ViLReF / RET-CLIP) weights converted with
#   python tools/model_converters/vilref_to_mm.py clip_cn_vit-b-16.pt checkpoints/cnclip_vitb16.pth
# load_from = 'checkpoints/cnclip_vitb16.pth'
