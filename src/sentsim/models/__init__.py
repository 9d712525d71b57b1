"""The model's building blocks: small torch modules that each save and load themselves."""

from sentsim.models.normalize import Normalize
from sentsim.models.pooling import POOLING_MODES, Pooling
from sentsim.models.transformer import Transformer

__all__ = ["POOLING_MODES", "Normalize", "Pooling", "Transformer"]
