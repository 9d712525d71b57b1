"""Search over embeddings: top-k corpus hits per query, paraphrase mining, community detection.

Same inputs and outputs as sentence-transformers' ``util`` functions of these names; the work is
done in chunks so a large corpus never needs a full query × corpus matrix in memory.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor

from sentsim.inference.similarity import as_tensor, cos_sim, dot_score, normalize_embeddings
from sentsim.progress import progress_bar

if TYPE_CHECKING:
    from sentsim.encoders.bi_encoder import SentenceTransformer

ScoreFunction = Callable[[Tensor, Tensor], Tensor]


def _merge_top_k(best: tuple[Tensor, Tensor] | None, scores: Tensor, offset: int, k: int) -> tuple[Tensor, Tensor]:
    """The running top-k (values, corpus ids) per row, merged with one more chunk of scores."""
    values, ids = scores.topk(min(k, scores.shape[1]), dim=1)
    ids = ids + offset
    if best is not None:
        values, ids = torch.cat([best[0], values], dim=1), torch.cat([best[1], ids], dim=1)
        values, order = values.topk(min(k, values.shape[1]), dim=1)
        ids = ids.gather(1, order)
    return values, ids


def semantic_search(query_embeddings: Any, corpus_embeddings: Any, query_chunk_size: int = 100,
                    corpus_chunk_size: int = 500000, top_k: int = 10,
                    score_function: ScoreFunction = cos_sim) -> list[list[dict[str, int | float]]]:
    """Per query, the ``top_k`` corpus entries as ``{"corpus_id", "score"}`` dicts, best first."""
    queries = as_tensor(query_embeddings)
    corpus = as_tensor(corpus_embeddings)
    if queries.ndim == 1:
        queries = queries.unsqueeze(0)
    queries = queries.to(corpus.device)
    results: list[list[dict[str, int | float]]] = []
    for query_start in range(0, len(queries), query_chunk_size):
        query_chunk = queries[query_start : query_start + query_chunk_size]
        if score_function is cos_sim:
            query_chunk = normalize_embeddings(query_chunk)
        best = None
        for corpus_start in range(0, len(corpus), corpus_chunk_size):
            corpus_chunk = corpus[corpus_start : corpus_start + corpus_chunk_size]
            if score_function is cos_sim:  # both sides normalised once: a plain product is the cosine
                scores = dot_score(query_chunk, normalize_embeddings(corpus_chunk))
            else:
                scores = score_function(query_chunk, corpus_chunk)
            best = _merge_top_k(best, scores, corpus_start, top_k)
        if best is None:
            results.extend([] for _ in range(len(query_chunk)))
            continue
        for values, ids in zip(best[0].cpu().tolist(), best[1].cpu().tolist(), strict=True):
            results.append([{"corpus_id": int(i), "score": float(v)} for v, i in zip(values, ids, strict=True)])
    return results


def paraphrase_mining(model: SentenceTransformer, sentences: list[str], show_progress_bar: bool = False,
                      batch_size: int = 32, query_chunk_size: int = 5000, corpus_chunk_size: int = 100000,
                      max_pairs: int = 500000, top_k: int = 100, score_function: ScoreFunction = cos_sim,
                      truncate_dim: int | None = None, prompt_name: str | None = None,
                      prompt: str | None = None) -> list[list[float | int]]:
    """``[score, i, j]`` (i < j) for the most similar sentence pairs, best first."""
    embeddings = model.encode(sentences, show_progress_bar=show_progress_bar, batch_size=batch_size,
                              convert_to_tensor=True, truncate_dim=truncate_dim, prompt_name=prompt_name,
                              prompt=prompt)
    return paraphrase_mining_embeddings(embeddings, query_chunk_size=query_chunk_size,
                                        corpus_chunk_size=corpus_chunk_size, max_pairs=max_pairs, top_k=top_k,
                                        score_function=score_function)


def paraphrase_mining_embeddings(embeddings: Any, query_chunk_size: int = 5000, corpus_chunk_size: int = 100000,
                                 max_pairs: int = 500000, top_k: int = 100,
                                 score_function: ScoreFunction = cos_sim) -> list[list[float | int]]:
    """Each embedding's ``top_k`` neighbours (itself excluded) as unordered pairs; the ``max_pairs`` best."""
    embeddings = as_tensor(embeddings)
    kept: list[tuple[float, int, int]] = []  # a min-heap, so the weakest pair is the one to drop
    seen: set[tuple[int, int]] = set()
    for query_start in range(0, len(embeddings), query_chunk_size):
        query_chunk = embeddings[query_start : query_start + query_chunk_size]
        best = None
        for corpus_start in range(0, len(embeddings), corpus_chunk_size):
            scores = score_function(query_chunk, embeddings[corpus_start : corpus_start + corpus_chunk_size])
            best = _merge_top_k(best, scores.detach(), corpus_start, top_k + 1)
        assert best is not None
        for row, (values, ids) in enumerate(zip(best[0].cpu().tolist(), best[1].cpu().tolist(), strict=True)):
            i = query_start + row
            neighbours = [(j, score) for j, score in zip(ids, values, strict=True) if j != i][:top_k]
            for j, score in neighbours:
                pair = (min(i, j), max(i, j))
                if pair in seen:
                    continue
                if len(kept) < max_pairs:
                    heapq.heappush(kept, (score, *pair))
                    seen.add(pair)
                elif score > kept[0][0]:
                    dropped = heapq.heappushpop(kept, (score, *pair))
                    seen.add(pair)
                    seen.discard(dropped[1:])
    return [[score, i, j] for score, i, j in sorted(kept, key=lambda item: item[0], reverse=True)]


def community_detection(embeddings: Any, threshold: float = 0.75, min_community_size: int = 10,
                        batch_size: int = 1024, show_progress_bar: bool = False) -> list[list[int]]:
    """Groups of at least ``min_community_size`` embeddings within cosine ``threshold`` of a centre.

    Largest first; the centre leads each group and no embedding is in two groups.
    """
    if len(embeddings) == 0:
        return []
    unit = normalize_embeddings(_matrix(embeddings))
    if len(unit) < min_community_size:
        return []
    candidates: list[tuple[int, np.ndarray]] = []
    starts = range(0, len(unit), batch_size)
    for start in progress_bar(starts, desc="Finding clusters", unit="batch", quiet=not show_progress_bar):
        scores = unit[start : start + batch_size] @ unit.T
        for row, row_scores in enumerate(scores):
            members = torch.nonzero(row_scores >= threshold).squeeze(1)
            if len(members) >= min_community_size:
                order = row_scores[members].argsort(descending=True, stable=True)
                candidates.append((start + row, members[order].cpu().numpy()))
    candidates.sort(key=lambda item: len(item[1]), reverse=True)
    used = np.zeros(len(unit), dtype=bool)
    communities: list[list[int]] = []
    for centre, members in candidates:
        if used[centre]:
            continue
        free = members[~used[members]]
        if len(free) >= min_community_size:
            community = [centre, *(int(index) for index in free if index != centre)]
            communities.append(community)
            used[community] = True
    return sorted(communities, key=len, reverse=True)


def _matrix(values: Any) -> Tensor:
    tensor = as_tensor(values)
    return tensor.unsqueeze(0) if tensor.ndim == 1 else tensor
