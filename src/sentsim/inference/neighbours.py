"""Exact cosine nearest neighbours of numpy embeddings, in bounded memory, without torch.

For ``sentsim search`` and ``sentsim dedup``, whose embeddings are numpy arrays already (from
``encode`` or a ``.npy`` file): with these the light ``sentsim[onnx]`` install searches and
deduplicates too. (``sentsim.util.semantic_search`` and ``paraphrase_mining`` stay torch code:
they take and mirror sentence-transformers' tensors, GPU ones included.)

Equal scores are ordered by the lower corpus index first, so a file's results do not depend on
how the work was chunked.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

#: Scores held at once (query rows × corpus rows): 16 Mi float32 values, 64 MB.
SCORE_BUDGET = 1 << 24


def unit_rows(embeddings: np.ndarray) -> np.ndarray:
    """float32 rows scaled to length 1; a zero row stays zero (as torch's ``normalize``)."""
    matrix = np.asarray(embeddings, dtype=np.float32)
    if matrix.ndim != 2:
        raise ValueError(f"embeddings must be a 2-D matrix, got shape {matrix.shape}")
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return matrix / np.maximum(norms, 1e-12)


def _best(row: np.ndarray, k: int) -> np.ndarray:
    """Indices of the ``k`` largest values of ``row``, best first, ties by the lower index."""
    if k >= len(row):
        return np.lexsort((np.arange(len(row)), -row))
    kth = row[np.argpartition(-row, k - 1)[k - 1]]
    above = np.flatnonzero(row > kth)
    chosen = np.concatenate([above, np.flatnonzero(row == kth)[: k - len(above)]])
    return chosen[np.lexsort((chosen, -row[chosen]))]


def nearest(queries: np.ndarray, corpus: np.ndarray, *, top_k: int,
            skip_self: bool = False) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Per query row, ``(corpus indices, cosines)`` of its ``top_k`` nearest corpus rows, best first.

    ``skip_self``: queries are the corpus itself, and row i is not its own neighbour. A NaN score
    (a row with NaN values) never ranks.
    """
    if top_k < 1:
        raise ValueError(f"top_k must be at least 1, got {top_k}")
    left, right = unit_rows(queries), unit_rows(corpus)
    if left.shape[1] != right.shape[1]:
        raise ValueError(f"queries have {left.shape[1]} dimensions, the corpus {right.shape[1]}")
    k = min(top_k, len(right) - (1 if skip_self else 0))
    rows_at_once = max(1, SCORE_BUDGET // max(len(right), 1))
    has_nan = bool(np.isnan(left).any() or np.isnan(right).any())
    for start in range(0, len(left), rows_at_once):
        scores = left[start : start + rows_at_once] @ right.T
        if has_nan:
            scores[np.isnan(scores)] = -np.inf
        if skip_self:
            rows = np.arange(len(scores))
            scores[rows, start + rows] = -np.inf
        ids = _best_of_rows(scores, k)
        values = np.take_along_axis(scores, ids, axis=1)
        for row_ids, row_values in zip(ids, values, strict=True):
            finite = np.isfinite(row_values)  # itself, or a NaN row: not a neighbour
            yield row_ids[finite], row_values[finite]


def _best_of_rows(scores: np.ndarray, k: int) -> np.ndarray:
    """``_best`` of every row at once; a row whose k-th value is tied past the cut is redone alone."""
    rows, width = scores.shape
    if k == 0:
        return np.zeros((rows, 0), dtype=np.int64)
    if k >= width:
        ids = np.tile(np.arange(width), (rows, 1))
    else:
        ids = np.argpartition(scores, width - k, axis=1)[:, width - k :]
        values = np.take_along_axis(scores, ids, axis=1)
        kth = values.min(axis=1, keepdims=True)
        tied = np.flatnonzero((scores == kth).sum(axis=1) > (values == kth).sum(axis=1))
        for row in tied:  # argpartition chose among equal values arbitrarily: take the lower indices
            ids[row] = _best(scores[row], k)
    values = np.take_along_axis(scores, ids, axis=1)
    return np.take_along_axis(ids, np.lexsort((ids, -values), axis=1), axis=1)


def near_duplicate_pairs(embeddings: np.ndarray, *, threshold: float,
                         top_k: int) -> list[tuple[float, int, int]]:
    """``(cosine, i, j)`` with i < j for every pair at or above ``threshold`` among each row's
    ``top_k`` nearest others, best first (ties by i, then j)."""
    found: dict[tuple[int, int], float] = {}
    for i, (ids, scores) in enumerate(nearest(embeddings, embeddings, top_k=top_k, skip_self=True)):
        for j, score in zip(ids.tolist(), scores.tolist(), strict=True):
            if score < threshold:
                break  # best first: the rest of this row is lower still
            pair = (min(i, j), max(i, j))
            found[pair] = max(score, found.get(pair, score))
    return sorted(((score, i, j) for (i, j), score in found.items()), key=lambda item: (-item[0], item[1], item[2]))
