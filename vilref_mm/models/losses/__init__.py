from .wscl import WeightedSimilarityCouplingLoss

__all__ = ['WeightedSimilarityCouplingLoss']
