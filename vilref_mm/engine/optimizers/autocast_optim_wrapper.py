"""bf16 mixed precision without loss scaling."""
from contextlib import contextmanager
from typing import Iterator, Union

import torch
from mmengine.optim import OptimWrapper
from mmengine.registry import OPTIM_WRAPPERS
from torch import nn


@OPTIM_WRAPPERS.register_module()
class AutocastOptimWrapper(OptimWrapper):
    """:class:`~mmengine.optim.OptimWrapper` that runs the forward pass under
    ``torch.autocast`` (bf16 by default) and steps without a GradScaler.

    MMEngine's ``AmpOptimWrapper`` always scales the loss; its scaler checks the gradients for
    infinities and reads the result on the host at every step (a device synchronisation).
    bf16 has fp32's exponent range and needs no loss scaling, so this wrapper leaves it out:
    the step is the plain optimizer step. ``tools/train.py --amp`` selects it
    (:func:`~vilref_mm.engine.enable_amp`). Use ``AmpOptimWrapper`` for fp16.

    Args:
        dtype (str | torch.dtype): Autocast dtype. Defaults to 'bfloat16'.
        **kwargs: As :class:`~mmengine.optim.OptimWrapper`.
    """

    def __init__(self, dtype: Union[str, torch.dtype] = 'bfloat16', **kwargs) -> None:
        super().__init__(**kwargs)
        self.cast_dtype = getattr(torch, dtype) if isinstance(dtype, str) else dtype
        if self.cast_dtype == torch.float16:
            raise ValueError('AutocastOptimWrapper: float16 needs loss scaling; use '
                             "AmpOptimWrapper(dtype='float16') for it")

    @contextmanager
    def optim_context(self, model: nn.Module) -> Iterator[None]:
        """Gradient accumulation's context (MMEngine's) and autocast on the model's device."""
        device = next(model.parameters()).device.type
        with super().optim_context(model), torch.autocast(device, dtype=self.cast_dtype):
            yield
