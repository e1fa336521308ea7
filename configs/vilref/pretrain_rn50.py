# ViLReF pre-training, RN50 + RoBERTa-wwm-ext-base-chinese (12 layers).
_base_ = ['../_base_/models/vilref_rn50.py']

default_scope = 'mmpretrain'
custom_imports = dict(imports=['vilref_mm'], allow_failed_imports=False)

# Start from ViLReF RN50 weights converted with
#   python tools/model_converters/vilref_to_mm.py ViLReF_RN50.pt checkpoints/vilref_rn50.pth
# (Chinese-CLIP's RN50 release has a 3-layer RBT3 text encoder: set
#  model.text_encoder.bert_cfg = dict(num_hidden_layers=3) to load it.)
# load_from = 'checkpoints/vilref_rn50.pth'
