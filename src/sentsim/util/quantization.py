"""``sentence_transformers.util.quantization``'s ``quantize_embeddings`` (6.x's layout)."""

from sentsim.inference.quantize import quantize_embeddings

__all__ = ["quantize_embeddings"]
