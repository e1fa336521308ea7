"""MMEngine's CheckpointHook made crash-safe."""
import os.path as osp
import re

from mmengine.dist import is_main_process
from mmengine.hooks import CheckpointHook
from mmpretrain.registry import HOOKS

from vilref_mm.utils.fileio import write_text_atomic


@HOOKS.register_module()
class DurableCheckpointHook(CheckpointHook):
    """:class:`~mmengine.hooks.CheckpointHook` whose saves survive a crash at any moment.

    MMEngine's hook removes the checkpoint that falls out of ``max_keep_ckpts`` before it
    writes the new one, and rewrites ``last_checkpoint`` in place: a kill during a save can
    leave a truncated checkpoint and a ``last_checkpoint`` naming a deleted one. This hook
    removes the old checkpoint only after the new one and ``last_checkpoint`` are complete
    (both are written atomically: :meth:`ViLReFRunner.save_checkpoint` and
    :func:`~vilref_mm.utils.fileio.write_text_atomic`), and when training resumes it removes
    the checkpoints such a kill left beyond ``max_keep_ckpts``.

    :class:`~vilref_mm.engine.ViLReFRunner` uses it in place of ``CheckpointHook``; the
    arguments are the same.
    """

    def before_train(self, runner) -> None:
        super().before_train(runner)
        if self.max_keep_ckpts <= 0 or not self.keep_ckpt_ids or not is_main_process():
            return
        name = re.compile(re.escape(self.filename_tmpl).replace(r'\{\}', r'(\d+)') + '$')
        newest = max(self.keep_ckpt_ids)
        for entry in sorted(self.file_backend.list_dir_or_file(self.out_dir, list_dir=False)):
            match = name.match(entry)
            step = int(match.group(1)) if match else newest
            if step < newest and step not in self.keep_ckpt_ids:
                self._remove(runner, entry, 'left by a save that was interrupted')

    def _save_checkpoint_with_step(self, runner, step: int, meta: dict) -> None:
        dropped = None
        if self.max_keep_ckpts > 0 and not (self.keep_ckpt_ids
                                            and self.keep_ckpt_ids[-1] == step):
            if len(self.keep_ckpt_ids) == self.max_keep_ckpts:
                dropped = self.keep_ckpt_ids.popleft()
            self.keep_ckpt_ids.append(step)
            runner.message_hub.update_info('keep_ckpt_ids', list(self.keep_ckpt_ids))

        filename = self.filename_tmpl.format(step)
        self.last_ckpt = self.file_backend.join_path(self.out_dir, filename)
        runner.message_hub.update_info('last_ckpt', self.last_ckpt)
        runner.save_checkpoint(
            self.out_dir, filename, self.file_client_args, save_optimizer=self.save_optimizer,
            save_param_scheduler=self.save_param_scheduler, meta=meta, by_epoch=self.by_epoch,
            backend_args=self.backend_args, **self.args)
        if not is_main_process():
            return
        write_text_atomic(osp.join(runner.work_dir, 'last_checkpoint'), [self.last_ckpt])
        if dropped is not None:
            self._remove(runner, self.filename_tmpl.format(dropped))

    def _remove(self, runner, filename: str, why: str = '') -> None:
        """Remove a checkpoint beyond ``max_keep_ckpts`` (logged at INFO with a ``why``)."""
        path = self.file_backend.join_path(self.out_dir, filename)
        if self.file_backend.isfile(path):
            self.file_backend.remove(path)
        elif self.file_backend.isdir(path):  # DeepSpeed writes folders
            self.file_backend.rmtree(path)
        else:
            return
        message = f'removed {path}, beyond max_keep_ckpts={self.max_keep_ckpts}'
        if why:
            runner.logger.info(f'{message} ({why})')
        else:
            runner.logger.debug(message)
