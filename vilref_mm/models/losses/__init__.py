from .distillation import MomentumDistillationLoss
from .soft_targets import LabelSoftTargetLoss
from .wscl import WeightedSimilarityCouplingLoss

__all__ = ['WeightedSimilarityCouplingLoss', 'LabelSoftTargetLoss', 'MomentumDistillationLoss']
