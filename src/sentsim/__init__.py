"""sentsim: train, evaluate and serve siamese sentence-embedding models for semantic similarity."""

__version__ = "0.1.0"

from . import losses
from .model import SentenceTransformer
from .training.compat import InputExample, SentencesDataset

__all__ = ["InputExample", "SentenceTransformer", "SentencesDataset", "__version__", "losses"]
