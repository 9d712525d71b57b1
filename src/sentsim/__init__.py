"""sentsim: train, evaluate and serve siamese sentence-embedding models for semantic similarity."""

__version__ = "0.1.0"

from . import losses
from .model import SentenceTransformer

__all__ = ["SentenceTransformer", "__version__", "losses"]
