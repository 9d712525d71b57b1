"""``sentence_transformers.util.tensor``'s embedding helpers that sentsim has (6.x's layout)."""

from sentsim.inference.quantize import truncate_embeddings
from sentsim.inference.similarity import normalize_embeddings

__all__ = ["normalize_embeddings", "truncate_embeddings"]
