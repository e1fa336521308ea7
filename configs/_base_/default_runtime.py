# Runtime shared by the vilref_mm pre-training, classification and zero-shot configs.
default_scope = 'mmpretrain'
# Our runner (durable checkpoints, complete weights, random states, CPU distributed runs),
# also when mmpretrain's own tools/train.py (or `mim train mmpretrain`) builds it.
runner_type = 'ViLReFRunner'
custom_imports = dict(imports=['vilref_mm'], allow_failed_imports=False)

default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=50),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(type='CheckpointHook', interval=1, max_keep_ckpts=3),
    sampler_seed=dict(type='DistSamplerSeedHook'),
)

env_cfg = dict(
    cudnn_benchmark=False,
    mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
    dist_cfg=dict(backend='nccl'),
)

# Scalars go to work_dir/<timestamp>/vis_data; with VILREF_TENSORBOARD=1 in the environment
# (e.g. `VILREF_TENSORBOARD=1 python tools/train.py CONFIG`) to TensorBoard as well
# (`tensorboard --logdir work_dirs`).
vis_backends = [dict(type='LocalVisBackend')] + (
    [dict(type='TensorboardVisBackend')] if {{'$VILREF_TENSORBOARD:0'}} else [])
visualizer = dict(type='UniversalVisualizer', vis_backends=vis_backends)

log_level = 'INFO'
load_from = None
resume = False
# diff_rank_seed: every rank its own seed (seed + rank) for dropout and FLIP masks; the
# samplers still shuffle alike on every rank. Checkpoints hold the generators' states, so a
# resumed run continues the same streams (docs/pretrain.md).
randomness = dict(seed=0, diff_rank_seed=True)
