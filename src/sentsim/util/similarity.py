"""``sentence_transformers.util.similarity``'s names, for code that imports them from there (6.x's layout)."""

from sentsim.inference.similarity import (
    SimilarityFunction,
    cos_sim,
    dot_score,
    euclidean_sim,
    manhattan_sim,
    pairwise_cos_sim,
    pairwise_dot_score,
    pairwise_euclidean_sim,
    pairwise_manhattan_sim,
)

pytorch_cos_sim = cos_sim

__all__ = ["SimilarityFunction", "cos_sim", "dot_score", "euclidean_sim", "manhattan_sim", "pairwise_cos_sim",
           "pairwise_dot_score", "pairwise_euclidean_sim", "pairwise_manhattan_sim", "pytorch_cos_sim"]
