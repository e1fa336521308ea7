"""A hook for distributed tests (import it with ``custom_imports``, its folder on the Python
path): after training, every rank saves its memory queue to ``work_dir/queue_rank{rank}.pth``,
so that a test can compare the ranks' queues."""
import os.path as osp

import torch
from mmengine.dist import get_rank
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmpretrain.registry import HOOKS


@HOOKS.register_module()
class SaveRankQueueHook(Hook):
    """Save this rank's memory queue (its state dict) after training."""

    def after_train(self, runner) -> None:
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        torch.save({key: value.cpu() for key, value in model.memory_queue.state_dict().items()},
                   osp.join(runner.work_dir, f'queue_rank{get_rank()}.pth'))
