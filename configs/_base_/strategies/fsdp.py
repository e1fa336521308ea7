# Fully sharded data parallel (PyTorch FSDP2) through MMEngine's FlexibleRunner, on GPUs (NCCL)
# and CPUs (gloo): parameters, gradients and AdamW states split over the ranks; the momentum
# towers are sharded like the online towers, so each rank's EMA updates its own shards.
# FULL_SHARD (ZeRO-3) gathers each layer's parameters again for the backward; use
# fsdp_shard-grad-op.py (ZeRO-2) when the parameters fit gathered. Add this file to a recipe's
# _base_ and set runner_type = 'ViLReFFlexibleRunner' in the config itself (docs/pretrain.md).
strategy = dict(type='ViLReFFSDPStrategy', sharding_strategy='FULL_SHARD')
