from .distributed import all_gather_with_grad
from .fileio import atomic_open, write_text_atomic

__all__ = ['all_gather_with_grad', 'atomic_open', 'write_text_atomic']
