"""sentsim.util against the behaviours sentence-transformers' own util tests pin (tiny inputs, fast).

The ``integration`` tests at the end compare tie-breaking with sentence-transformers itself on inputs
built to tie; the rest never import it.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sentsim import util

TWO_GROUPS = [[1.0, 0.0, 0.0], [0.9, 0.1, 0.0], [0.8, 0.2, 0.0], [0.1, 0.9, 0.0], [0.0, 1.0, 0.0], [0.2, 0.8, 0.0]]


def _reference_cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    return a @ b.T


def test_semantic_search_chunks_match_full_topk():
    generator = np.random.default_rng(0)
    corpus = torch.tensor(generator.standard_normal((300, 16)))
    queries = torch.tensor(generator.standard_normal((12, 16)))
    hits = util.semantic_search(queries, corpus, top_k=7, query_chunk_size=5, corpus_chunk_size=17)
    values, ids = util.cos_sim(queries, corpus).topk(7)
    assert len(hits) == 12 and all(len(row) == 7 for row in hits)
    assert [[hit["corpus_id"] for hit in row] for row in hits] == ids.tolist()
    np.testing.assert_allclose([[hit["score"] for hit in row] for row in hits], values.numpy(), atol=1e-12)
    assert all(isinstance(hit["corpus_id"], int) and isinstance(hit["score"], float) for hit in hits[0])
    unchunked = util.semantic_search(queries, corpus, top_k=7)
    assert [[hit["corpus_id"] for hit in row] for row in unchunked] == ids.tolist()


def test_semantic_search_inputs_top_k_and_one_query():
    generator = np.random.default_rng(1)
    corpus = generator.standard_normal((6, 8)).astype(np.float32)
    query = corpus[2] + 0.01
    from_numpy = util.semantic_search(query, corpus, top_k=50)  # 1-D query, numpy, top_k > corpus
    assert len(from_numpy) == 1 and len(from_numpy[0]) == 6 and from_numpy[0][0]["corpus_id"] == 2
    from_torch = util.semantic_search(torch.from_numpy(query), torch.from_numpy(corpus), top_k=50)
    from_list = util.semantic_search([query.tolist()], corpus.tolist(), top_k=50)
    assert from_numpy == from_torch
    assert [hit["corpus_id"] for hit in from_list[0]] == [hit["corpus_id"] for hit in from_numpy[0]]
    dot_hits = util.semantic_search(query, corpus, top_k=3, score_function=util.dot_score)
    expected = np.argsort(-(corpus @ query), kind="stable")[:3]
    assert [hit["corpus_id"] for hit in dot_hits[0]] == expected.tolist()
    assert util.semantic_search(corpus[:2], corpus[:0], top_k=3) == [[], []]


def test_cos_sim_inputs_and_pairwise():
    generator = np.random.default_rng(2)
    a, b = generator.standard_normal((5, 10)), generator.standard_normal((4, 10))
    np.testing.assert_allclose(util.cos_sim(a, b).numpy(), _reference_cosine(a, b), atol=1e-10)
    np.testing.assert_allclose(util.pytorch_cos_sim(a.tolist(), b.tolist()).numpy(), _reference_cosine(a, b),
                               atol=1e-6)
    one = util.cos_sim(a[0], b[0])
    assert one.shape == (1, 1) and one.item() == pytest.approx(_reference_cosine(a[:1], b[:1])[0, 0])
    assert util.cos_sim(torch.tensor(a[0]), torch.tensor(b)).shape == (1, 4)
    np.testing.assert_allclose(util.cos_sim([[1.0, 0.0]], [[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]]).numpy(),
                               [[1.0, 0.0, -1.0]])
    np.testing.assert_allclose(util.dot_score(np.array([[1.0, 0.0]]), np.array([[2.0, 0.0], [0.0, 1.0]])).numpy(),
                               [[2.0, 0.0]])
    pairwise = util.pairwise_cos_sim(a[:4], b).numpy()
    np.testing.assert_allclose(pairwise, np.diag(_reference_cosine(a[:4], b)), atol=1e-10)
    np.testing.assert_allclose(util.pairwise_dot_score(np.eye(2), np.eye(2)).numpy(), [1.0, 1.0])
    np.testing.assert_allclose(util.pairwise_euclidean_sim([[1.0, 0.0], [1.0, 1.0]], [[0.0, 0.0]] * 2).numpy(),
                               [-1.0, -np.sqrt(2.0)], atol=1e-6)
    np.testing.assert_allclose(util.manhattan_sim([[1.0, 0.0], [0.0, 1.0]], [[0.0, 0.0], [0.0, 1.0]]).numpy(),
                               [[-1.0, -2.0], [-1.0, 0.0]])
    half = util.cos_sim(torch.tensor(a, dtype=torch.bfloat16), torch.tensor(b, dtype=torch.bfloat16))
    assert half.dtype == torch.float32


def test_similarity_of_sparse_inputs_equals_dense():
    dense = torch.tensor([[0.0, 2.0, 0.0, 1.0], [3.0, 0.0, 0.0, 0.0], [0.0, 0.0, 1.0, 1.0]])
    sparse = dense.to_sparse()
    for function in (util.cos_sim, util.dot_score, util.euclidean_sim, util.manhattan_sim, util.pairwise_cos_sim):
        np.testing.assert_allclose(function(sparse, sparse).numpy(), function(dense, dense).numpy(), atol=1e-6)
    assert util.semantic_search(sparse, sparse, top_k=1)[1][0]["corpus_id"] == 1


def test_normalize_embeddings_unit_length_and_zero_rows():
    generator = np.random.default_rng(3)
    unit = util.normalize_embeddings(torch.tensor(generator.standard_normal((20, 30))))
    np.testing.assert_allclose(torch.linalg.vector_norm(unit, dim=1).numpy(), np.ones(20), atol=1e-12)
    assert util.normalize_embeddings(torch.zeros(2, 3)).abs().sum().item() == 0.0


def test_paraphrase_mining_pairs_and_limits():
    generator = np.random.default_rng(4)
    embeddings = torch.tensor(generator.standard_normal((40, 12)))
    full = util.cos_sim(embeddings, embeddings).numpy()
    upper = [(full[i, j], i, j) for i in range(40) for j in range(i + 1, 40)]
    best = sorted(upper, reverse=True)
    pairs = util.paraphrase_mining_embeddings(embeddings, top_k=39, max_pairs=1000)
    assert [(i, j) for _, i, j in pairs] == [(i, j) for _, i, j in best]
    np.testing.assert_allclose([score for score, _, _ in pairs], [score for score, _, _ in best], atol=1e-12)
    capped = util.paraphrase_mining_embeddings(embeddings, top_k=39, max_pairs=10, query_chunk_size=7,
                                               corpus_chunk_size=9)
    assert [(i, j) for _, i, j in capped] == [(i, j) for _, i, j in best[:10]]
    nearest = util.paraphrase_mining_embeddings(embeddings, top_k=1)
    own_best = {(min(i, int(np.argsort(-full[i])[1])), max(i, int(np.argsort(-full[i])[1]))) for i in range(40)}
    assert {(i, j) for _, i, j in nearest} == own_best


def test_paraphrase_mining_encodes_with_the_model(tiny_model):
    sentences = ["a cat sits on the mat", "a cat sits on a mat", "stocks fell sharply today", "the market dropped"]
    pairs = util.paraphrase_mining(tiny_model, sentences, batch_size=2)
    embeddings = tiny_model.encode(sentences, convert_to_tensor=True, batch_size=2)  # the same batches
    assert pairs == util.paraphrase_mining_embeddings(embeddings)
    assert len(pairs) == 6 and all(i < j for _, i, j in pairs)


@pytest.mark.parametrize(("points", "threshold", "size", "expected"), [
    (TWO_GROUPS, 0.8, 2, [[0, 1, 2], [3, 4, 5]]),
    ([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]], 0.99, 2, []),
    (TWO_GROUPS[:3], 0.5, 2, [[0, 1, 2]]),
    (TWO_GROUPS[:4], 0.8, 3, [[0, 1, 2]]),
    ([*TWO_GROUPS[:3], [0.7, 0.3, 0.0], [0.1, 0.9, 0.0], [0.0, 1.0, 0.0]], 0.8, 2, [[0, 1, 2, 3], [4, 5]]),
])
def test_community_detection_cases(points, threshold, size, expected):
    for embeddings in (torch.tensor(points), np.array(points)):
        result = util.community_detection(embeddings, threshold=threshold, min_community_size=size)
        assert sorted(sorted(community) for community in result) == expected


def test_community_detection_batches_sizes_and_progress(capsys):
    torch.manual_seed(0)
    embeddings = torch.rand(300, 16)
    plain = util.community_detection(embeddings, threshold=0.8, min_community_size=10)
    batched = util.community_detection(embeddings, threshold=0.8, min_community_size=10, batch_size=64,
                                       show_progress_bar=True)
    assert plain == batched and plain and all(len(community) >= 10 for community in plain)
    members = [index for community in plain for index in community]
    assert len(members) == len(set(members))
    unit = util.cos_sim(embeddings, embeddings)
    assert all((unit[community[0], community] >= 0.8).all() for community in plain)
    assert util.community_detection(embeddings[:5], min_community_size=10) == []
    assert util.community_detection(torch.zeros(0, 4)) == []
    assert util.community_detection(embeddings[0], min_community_size=1, threshold=0.5) == [[0]]


def test_quantize_embeddings_precisions():
    generator = np.random.default_rng(5)
    embeddings = generator.standard_normal((120, 16)).astype(np.float32)
    ranges = np.vstack((embeddings.min(axis=0), embeddings.max(axis=0)))
    int8 = util.quantize_embeddings(embeddings, "int8")
    assert int8.dtype == np.int8 and int8.min() == -128 and int8.max() == 127
    np.testing.assert_array_equal(util.quantize_embeddings(embeddings, "int8", ranges=ranges), int8)
    np.testing.assert_array_equal(util.quantize_embeddings(embeddings[:3], "int8", calibration_embeddings=embeddings),
                                  int8[:3])
    np.testing.assert_array_equal(util.quantize_embeddings(embeddings, "uint8").astype(np.int16) - 128, int8)
    ubinary = util.quantize_embeddings(embeddings, "ubinary")
    np.testing.assert_array_equal(ubinary, np.packbits(embeddings > 0, axis=-1))
    np.testing.assert_array_equal(util.quantize_embeddings(embeddings, "binary"),
                                  (ubinary.astype(np.int16) - 128).astype(np.int8))
    np.testing.assert_array_equal(util.quantize_embeddings(torch.from_numpy(embeddings), "int8"), int8)
    with pytest.raises(ValueError, match="single embedding"):
        util.quantize_embeddings(embeddings[:1], "int8")
    with pytest.raises(ValueError):
        util.quantize_embeddings(int8, "int8")
    multi = util.quantize_embeddings([embeddings[:50], embeddings[50:]], "int8")
    assert isinstance(multi, list) and [m.shape for m in multi] == [(50, 16), (70, 16)]
    np.testing.assert_array_equal(np.concatenate(multi), int8)
    assert util.quantize_embeddings(np.zeros((0, 16), dtype=np.float32), "ubinary").shape == (0, 2)


# -- tie-breaking, against sentence-transformers itself --------------------------------------------------------

def _tied_embeddings() -> torch.Tensor:
    """Eight points, many of them repeated exactly, so scores tie everywhere."""
    base = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [1.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    return base[[0, 1, 0, 2, 0, 1, 3, 2, 0, 3, 1, 0]]


@pytest.mark.integration
def test_ties_break_as_sentence_transformers_do():
    st_util = pytest.importorskip("sentence_transformers.util")
    embeddings = _tied_embeddings()
    for top_k, query_chunk, corpus_chunk in ((3, 100, 500000), (5, 2, 3), (20, 5, 4), (1, 1, 1)):
        options = {"top_k": top_k, "query_chunk_size": query_chunk, "corpus_chunk_size": corpus_chunk}
        assert util.semantic_search(embeddings, embeddings, **options) == \
            st_util.semantic_search(embeddings, embeddings, **options)
        assert util.semantic_search(embeddings, embeddings, score_function=util.dot_score, **options) == \
            st_util.semantic_search(embeddings, embeddings, score_function=st_util.dot_score, **options)
    for top_k, max_pairs, query_chunk, corpus_chunk in ((100, 500000, 5000, 100000), (2, 5, 3, 4), (3, 1, 2, 5),
                                                        (1, 7, 5000, 100000), (11, 20, 1, 2)):
        options = {"top_k": top_k, "max_pairs": max_pairs, "query_chunk_size": query_chunk,
                   "corpus_chunk_size": corpus_chunk}
        assert util.paraphrase_mining_embeddings(embeddings, **options) == \
            st_util.paraphrase_mining_embeddings(embeddings, **options)
    for threshold, size, batch in ((0.7, 2, 1024), (0.99, 3, 2), (0.5, 1, 5), (0.0, 4, 3)):
        assert util.community_detection(embeddings, threshold=threshold, min_community_size=size, batch_size=batch) \
            == st_util.community_detection(embeddings, threshold=threshold, min_community_size=size,
                                           batch_size=batch)
    tied = embeddings.numpy() - 0.5  # values sitting exactly on bucket edges and on zero
    for precision in ("int8", "uint8", "binary", "ubinary"):
        np.testing.assert_array_equal(util.quantize_embeddings(tied, precision),
                                      st_util.quantize_embeddings(tied, precision))


def test_util_submodules_of_sentence_transformers_6_layout():
    """``from sentence_transformers.util.similarity import cos_sim`` & co. keep working with sentsim's name."""
    import importlib

    for name in ("similarity", "retrieval", "quantization", "tensor"):
        module = importlib.import_module(f"sentsim.util.{name}")
        assert module.__all__ and all(getattr(module, item) is getattr(util, item) for item in module.__all__)
    from sentsim.util.similarity import cos_sim

    assert cos_sim is util.cos_sim
    with pytest.raises(AttributeError, match="mine_hard_negatives"):
        util.mine_hard_negatives  # noqa: B018
