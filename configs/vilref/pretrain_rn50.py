# The documented entry point of ViLReF pre-training (ModifiedResNet-50), kept at this path:
#   python tools/train.py configs/vilref/pretrain_rn50.py
# The recipe is vilref_rn50_8xb32-20e_fundus-reports-224px.py (docs/pretrain.md).
_base_ = ['./vilref_rn50_8xb32-20e_fundus-reports-224px.py']
