# DDP through MMEngine's FlexibleRunner: ViLReFDDPStrategy reads checkpoints under the trust
# rule and runs gloo on machines without CUDA. Add this file to a recipe's _base_ and set
# runner_type = 'ViLReFFlexibleRunner' in the config itself (default_runtime.py sets
# ViLReFRunner, and two bases may not set the same key); launch with tools/dist_train.sh.
strategy = dict(type='ViLReFDDPStrategy')
