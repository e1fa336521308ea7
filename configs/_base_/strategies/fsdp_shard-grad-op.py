# FSDP2 as fsdp.py with SHARD_GRAD_OP (ZeRO-2): gradients and AdamW states sharded, each
# layer's parameters kept gathered from its forward to its backward (less communication,
# more memory than FULL_SHARD). The momentum towers, which have no backward, are resharded
# after their forward either way.
strategy = dict(type='ViLReFFSDPStrategy', sharding_strategy='SHARD_GRAD_OP')
