"""Augmented SBERT (Thakur et al., 2021): more training pairs, scored by a cross-encoder.

STSb train has 5,749 gold pairs over ~10k distinct sentences, so almost every sentence is seen in
one pair only. Pairing each sentence with its nearest neighbours gives many new, informative pairs
(mostly related sentences, where the bi-encoder has most to learn); a cross-encoder trained on the
gold pairs scores them ("silver" labels), and the bi-encoder trains on gold + silver.

Nearest neighbours come from the bi-encoder being trained, before it is trained ("semantic search
sampling" in the paper, which worked best in-domain); pairs already in the gold set are left out.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import torch

from sentsim.data import PairDataset, ScoredPair
from sentsim.encoders.bi_encoder import SentenceTransformer
from sentsim.encoders.cross_encoder import CrossEncoder
from sentsim.errors import ConfigError
from sentsim.inference.encode import encode

#: Rows of the similarity matrix computed at once: bounds memory to ``chunk × sentences`` floats.
_CHUNK = 1024


def nearest_neighbour_pairs(
    model: SentenceTransformer,
    sentences: Sequence[str],
    *,
    top_k: int,
    exclude: Iterable[tuple[str, str]] = (),
    batch_size: int = 64,
    dtype: str = "auto",
) -> list[tuple[str, str]]:
    """Each distinct sentence with its ``top_k`` most similar others (cosine), as unordered pairs.

    A pair found from both ends is kept once; pairs in ``exclude`` (in either order) are dropped,
    so the gold pairs are never relabelled. The order is deterministic: by sentence, then by rank.
    """
    if top_k < 1:
        raise ConfigError(f"top_k must be at least 1, got {top_k}")
    unique = list(dict.fromkeys(sentences))
    if len(unique) < 2:
        return []
    embeddings = encode(model, unique, batch_size=batch_size, dtype=dtype, normalize=True,
                        convert_to="torch")
    k = min(top_k + 1, len(unique))
    seen = {frozenset(pair) for pair in exclude}
    pairs: list[tuple[str, str]] = []
    for start in range(0, len(unique), _CHUNK):
        block = embeddings[start : start + _CHUNK] @ embeddings.T
        rows = torch.arange(block.shape[0])
        block[rows, rows + start] = -float("inf")  # a sentence is not its own neighbour
        neighbours = block.topk(k - 1, dim=1).indices
        for row, columns in enumerate(neighbours.tolist()):
            anchor = unique[start + row]
            for column in columns:
                key = frozenset((anchor, unique[column]))
                if len(key) == 2 and key not in seen:
                    seen.add(key)
                    pairs.append((anchor, unique[column]))
    return pairs


def label_pairs(cross_encoder: CrossEncoder, pairs: Sequence[tuple[str, str]], *, batch_size: int = 64,
                dtype: str = "auto", source: str = "silver pairs") -> PairDataset:
    """Scores ``pairs`` with the cross-encoder (both orders averaged) into a dataset of silver pairs."""
    first = [a for a, _ in pairs]
    second = [b for _, b in pairs]
    scores = cross_encoder.score_pairs(first, second, batch_size=batch_size, dtype=dtype) if pairs else []
    silver = [ScoredPair(a, b, float(np.clip(score, 0.0, 1.0)), genre="silver")
              for a, b, score in zip(first, second, scores, strict=True)]
    return PairDataset(pairs=silver, source=source)


def combine(gold: PairDataset, silver: PairDataset) -> PairDataset:
    """Gold and silver pairs as one training set (gold first; the sampler shuffles anyway)."""
    return PairDataset(pairs=[*gold.pairs, *silver.pairs], source=f"{gold.source} + {silver.source}",
                       skipped=list(gold.skipped))
