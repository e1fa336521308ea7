# The documented entry point of ViLReF pre-training (ViT-B/16), kept at this path:
#   python tools/train.py configs/vilref/pretrain_vitb.py
#   bash tools/dist_train.sh configs/vilref/pretrain_vitb.py 8
# The recipe is vilref_vit-b16_8xb32-20e_fundus-reports-224px.py (docs/pretrain.md).
_base_ = ['./vilref_vit-b16_8xb32-20e_fundus-reports-224px.py']
