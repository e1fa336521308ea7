# Runtime shared by the vilref_mm segmentation configs: mmseg's, with vilref_mm imported and
# our runner (durable checkpoints, complete weights, random states, CPU distributed runs),
# also when mmseg's own tools/train.py builds it.
_base_ = ['mmseg::_base_/default_runtime.py']

default_scope = 'mmseg'
custom_imports = dict(imports=['vilref_mm'], allow_failed_imports=False)
runner_type = 'ViLReFRunner'

# Scalars go to work_dir/<timestamp>/vis_data; with VILREF_TENSORBOARD=1 in the environment
# to TensorBoard as well (docs/segmentation.md).
vis_backends = [dict(type='LocalVisBackend')] + (
    [dict(type='TensorboardVisBackend')] if {{'$VILREF_TENSORBOARD:0'}} else [])
visualizer = dict(type='SegLocalVisualizer', vis_backends=vis_backends, name='visualizer')
