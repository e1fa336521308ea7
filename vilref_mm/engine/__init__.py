from .runner import ViLReFRunner, build_runner

__all__ = ['ViLReFRunner', 'build_runner']
