"""Search over embeddings: top-k corpus hits per query, paraphrase mining, community detection.

Same inputs, outputs and tie-breaking as sentence-transformers' ``util`` functions of these names
(equal scores come back in the order theirs gives them); the work is done in chunks so a large
corpus never needs a full query × corpus matrix in memory.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable
from itertools import islice
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


def _keep_best(heap: list[tuple[float, int]], scores: list[float], ids: list[int], k: int) -> None:
    """Adds one chunk's candidates to a query's min-heap of (score, corpus id), capped at ``k``.

    At equal scores the tuple order decides: the larger corpus id stays, as in sentence-transformers.
    """
    candidates = zip(scores, ids, strict=True)
    for candidate in islice(candidates, max(k - len(heap), 0)):
        heapq.heappush(heap, candidate)
    for candidate in candidates:
        heapq.heappushpop(heap, candidate)


def semantic_search(query_embeddings: Any, corpus_embeddings: Any, query_chunk_size: int = 100,
                    corpus_chunk_size: int = 500000, top_k: int = 10,
                    score_function: ScoreFunction = cos_sim) -> list[list[dict[str, int | float]]]:
    """Per query, the ``top_k`` corpus entries as ``{"corpus_id", "score"}`` dicts, best first.

    Corpus chunks are the outer loop (each is normalised once); every query sees them in order.
    """
    queries = as_tensor(query_embeddings)
    corpus = as_tensor(corpus_embeddings)
    if queries.ndim == 1:
        queries = queries.unsqueeze(0)
    queries = queries.to(corpus.device)
    cosine = score_function is cos_sim  # both sides normalised once: a plain product is the cosine
    heaps: list[list[tuple[float, int]]] = [[] for _ in range(len(queries))]
    for corpus_start in range(0, len(corpus), corpus_chunk_size):
        corpus_chunk = corpus[corpus_start : corpus_start + corpus_chunk_size]
        if cosine:
            corpus_chunk = normalize_embeddings(_matrix(corpus_chunk))
        for query_start in range(0, len(queries), query_chunk_size):
            query_chunk = queries[query_start : query_start + query_chunk_size]
            if cosine:
                scores = dot_score(normalize_embeddings(query_chunk), corpus_chunk)
            else:
                scores = score_function(query_chunk, corpus_chunk)
            values, ids = scores.topk(min(top_k, scores.shape[1]), dim=1, largest=True, sorted=False)
            rows = zip(heaps[query_start : query_start + query_chunk_size], values.cpu().tolist(),
                       (ids + corpus_start).cpu().tolist(), strict=True)
            for heap, row_values, row_ids in rows:
                _keep_best(heap, row_values, row_ids, top_k)
    # a stable sort on the score alone: equal scores keep their heap order, as theirs do
    return [[{"corpus_id": int(i), "score": float(v)} for v, i in sorted(heap, key=lambda hit: hit[0], reverse=True)]
            for heap in heaps]


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
    """Each embedding's ``top_k`` neighbours (itself excluded) as unordered pairs; the ``max_pairs`` best.

    Pairs compete as (score, i, j) tuples in a min-heap, so at equal scores the larger (i, j) stays;
    once a pair is dropped, no later candidate scoring at most the dropped score is considered.
    """
    embeddings = as_tensor(embeddings)
    kept: list[tuple[float, int, int]] = []
    queued: set[tuple[int, int]] = set()
    floor = float("-inf")
    for query_start in range(0, len(embeddings), query_chunk_size):
        query_chunk = embeddings[query_start : query_start + query_chunk_size]
        best = None
        for corpus_start in range(0, len(embeddings), corpus_chunk_size):
            scores = score_function(query_chunk, embeddings[corpus_start : corpus_start + corpus_chunk_size])
            best = _merge_top_k(best, scores.detach(), corpus_start, top_k + 1)
        assert best is not None
        for row, (values, ids) in enumerate(zip(best[0].cpu().tolist(), best[1].cpu().tolist(), strict=True)):
            i = query_start + row
            for j, score in [(j, score) for j, score in zip(ids, values, strict=True) if j != i][:top_k]:
                pair = (min(i, j), max(i, j))
                if score <= floor or pair in queued:
                    continue
                queued.add(pair)
                if len(kept) < max_pairs:
                    heapq.heappush(kept, (score, *pair))
                    continue
                dropped = heapq.heappushpop(kept, (score, *pair))
                queued.discard(dropped[1:])
                floor = dropped[0]
    return [[score, i, j] for score, i, j in sorted(kept, key=lambda item: item[0], reverse=True)]


def _community_candidates(unit: Tensor, threshold: Tensor, min_community_size: int, batch_size: int,
                          show_progress_bar: bool) -> list[tuple[int, np.ndarray]]:
    """(centre, members best first) for every embedding with enough neighbours within ``threshold``.

    Members come from ``topk`` over a window that doubles until it holds every member, the window
    size carrying over from row to row, so equal scores are listed as sentence-transformers lists them.
    """
    candidates: list[tuple[int, np.ndarray]] = []
    window = min(max(2 * min_community_size, 50), len(unit))
    starts = range(0, len(unit), batch_size)
    for start in progress_bar(starts, desc="Finding clusters", unit="batch", quiet=not show_progress_bar):
        scores = unit[start : start + batch_size] @ unit.T
        smallest_needed = scores.topk(k=min_community_size, largest=True)[0][:, -1]
        for row in torch.nonzero(smallest_needed >= threshold).squeeze(1).tolist():
            values, ids = scores[row].topk(k=window, largest=True)
            while values[-1] >= threshold and window < len(unit):
                window = min(2 * window, len(unit))
                values, ids = scores[row].topk(k=window, largest=True)
            candidates.append((start + row, ids[values >= threshold].cpu().numpy().astype(np.uint32)))
    return candidates


def community_detection(embeddings: Any, threshold: float = 0.75, min_community_size: int = 10,
                        batch_size: int = 1024, show_progress_bar: bool = False) -> list[list[int]]:
    """Groups of at least ``min_community_size`` embeddings within cosine ``threshold`` of a centre.

    Largest first; the centre leads each group and no embedding is in two groups.
    """
    if len(embeddings) == 0:
        return []
    unit = _matrix(embeddings)
    if len(unit) < min_community_size:
        return []
    unit = normalize_embeddings(unit)
    limit = torch.tensor(threshold, device=unit.device)  # a float32 bound, as theirs, for any input dtype
    candidates = _community_candidates(unit, limit, min_community_size, batch_size, show_progress_bar)
    candidates.sort(key=lambda item: len(item[1]), reverse=True)
    used = np.zeros(len(unit), dtype=bool)
    communities: list[list[int]] = []
    for centre, members in candidates:
        if used[centre]:
            continue
        free = members[~used[members]]
        if len(free) >= min_community_size:
            community = [centre, *free[free != centre].tolist()]
            communities.append(community)
            used[community] = True
    return sorted(communities, key=len, reverse=True)


def _matrix(values: Any) -> Tensor:
    tensor = as_tensor(values)
    return tensor.unsqueeze(0) if tensor.ndim == 1 else tensor
