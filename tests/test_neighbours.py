"""The numpy neighbour search behind ``sentsim search`` / ``dedup``: the same hits as the torch util,
deterministic ties, any chunking, and rows that are zero, NaN or the query itself."""

from __future__ import annotations

import numpy as np
import pytest

from sentsim.inference import neighbours
from sentsim.inference.neighbours import near_duplicate_pairs, nearest


def _hits(queries, corpus, **options):
    return [(ids.tolist(), scores.tolist()) for ids, scores in nearest(queries, corpus, **options)]


def test_same_hits_as_semantic_search_on_random_embeddings() -> None:
    from sentsim import util

    generator = np.random.default_rng(0)
    queries, corpus = generator.normal(size=(7, 16)), generator.normal(size=(50, 16))
    expected = util.semantic_search(queries.astype(np.float32), corpus.astype(np.float32), top_k=5)
    for (ids, scores), hits in zip(_hits(queries, corpus, top_k=5), expected, strict=True):
        assert ids == [hit["corpus_id"] for hit in hits]
        np.testing.assert_allclose(scores, [hit["score"] for hit in hits], atol=1e-6)


def test_ties_go_to_the_lower_index_whatever_the_chunking(monkeypatch: pytest.MonkeyPatch) -> None:
    corpus = np.array([[1.0, 0.0], [0.0, 1.0], [2.0, 0.0], [1.0, 0.0], [0.5, 0.5]])
    queries = np.array([[1.0, 0.0], [3.0, 0.0], [0.0, 1.0]])
    whole = _hits(queries, corpus, top_k=2)
    assert [ids for ids, _ in whole] == [[0, 2], [0, 2], [1, 4]]
    monkeypatch.setattr(neighbours, "SCORE_BUDGET", 1)  # one query row at a time
    assert _hits(queries, corpus, top_k=2) == whole
    assert _hits(queries, corpus, top_k=4)[0][0] == [0, 2, 3, 4]


def test_self_zero_and_nan_rows_and_a_top_k_past_the_corpus() -> None:
    corpus = np.array([[1.0, 0.0], [0.0, 0.0], [np.nan, 1.0], [0.9, 0.1]])
    hits = _hits(corpus, corpus, top_k=10, skip_self=True)
    assert hits[0][0] == [3, 1]  # itself and the NaN row never; the zero row scores 0
    assert hits[2] == ([], [])  # a NaN query has no neighbours
    assert all(0 not in ids for ids, _ in hits[:1]) and all(3 not in ids for ids, _ in hits[3:])
    assert _hits(corpus[:1], corpus[:1], top_k=3, skip_self=True) == [([], [])]
    with pytest.raises(ValueError, match="dimensions"):
        list(nearest(np.ones((1, 3)), np.ones((2, 2)), top_k=1))
    with pytest.raises(ValueError, match="top_k"):
        list(nearest(np.ones((1, 2)), np.ones((2, 2)), top_k=0))


def test_near_duplicate_pairs_best_first_above_the_threshold() -> None:
    corpus = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [0.0, 2.0], [0.7, 0.7]])
    pairs = near_duplicate_pairs(corpus, threshold=0.99, top_k=3)
    assert [(i, j) for _, i, j in pairs] == [(0, 2), (1, 3)]
    assert all(score == pytest.approx(1.0) for score, _, _ in pairs)
    assert len(near_duplicate_pairs(corpus, threshold=0.5, top_k=3)) == 6
    assert near_duplicate_pairs(corpus[:1], threshold=-1.0, top_k=3) == []
