"""``sentence_transformers.util.retrieval``'s search and mining names (6.x's layout)."""

from sentsim.inference.search import (
    community_detection,
    paraphrase_mining,
    paraphrase_mining_embeddings,
    semantic_search,
)

__all__ = ["community_detection", "paraphrase_mining", "paraphrase_mining_embeddings", "semantic_search"]
