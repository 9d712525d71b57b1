"""sentence-transformers' ``util`` names, so ``from sentsim import util`` works unchanged.

Only re-exports: the functions live in ``sentsim.inference`` (similarity, search, quantize). The
submodules ``similarity``, ``retrieval``, ``quantization`` and ``tensor`` mirror sentence-transformers 6's
``util`` package, so ``from sentsim.util.similarity import cos_sim`` works too.
"""

from sentsim.inference.quantize import quantize_embeddings, truncate_embeddings
from sentsim.inference.search import (
    community_detection,
    paraphrase_mining,
    paraphrase_mining_embeddings,
    semantic_search,
)
from sentsim.inference.similarity import (
    SimilarityFunction,
    cos_sim,
    dot_score,
    euclidean_sim,
    manhattan_sim,
    normalize_embeddings,
    pairwise_cos_sim,
    pairwise_dot_score,
    pairwise_euclidean_sim,
    pairwise_manhattan_sim,
)

#: sentence-transformers' older name for ``cos_sim``.
pytorch_cos_sim = cos_sim

__all__ = [
    "SimilarityFunction",
    "community_detection",
    "cos_sim",
    "dot_score",
    "euclidean_sim",
    "manhattan_sim",
    "normalize_embeddings",
    "pairwise_cos_sim",
    "pairwise_dot_score",
    "pairwise_euclidean_sim",
    "pairwise_manhattan_sim",
    "paraphrase_mining",
    "paraphrase_mining_embeddings",
    "pytorch_cos_sim",
    "quantize_embeddings",
    "semantic_search",
    "truncate_embeddings",
]


def __getattr__(name: str) -> object:
    """sentence-transformers' other ``util`` names (hard-negative mining, downloads, imports by string,
    device helpers) are not sentsim's: say so by name instead of a bare AttributeError."""
    if name.startswith("__"):
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    raise AttributeError(f"sentsim.util has no {name}: it mirrors sentence-transformers' similarity, search and "
                         f"quantisation functions ({', '.join(sorted(__all__))}), not the rest of its util")

