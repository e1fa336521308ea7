from .distributed import all_gather_with_grad

__all__ = ['all_gather_with_grad']
