"""The model's building blocks: small torch modules that each save and load themselves."""

from .normalize import Normalize
from .pooling import POOLING_MODES, Pooling
from .transformer import Transformer

__all__ = ["POOLING_MODES", "Normalize", "Pooling", "Transformer"]
