"""sentsim's drop-in calls against sentence-transformers 6.2 on the bundled all-MiniLM-L6-v2, in fp32.

sentence-transformers is a dev dependency: only these tests (and test_interop) import it.
"""

from __future__ import annotations

import functools
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

pytestmark = pytest.mark.integration
st = pytest.importorskip("sentence_transformers")


@pytest.fixture(scope="module")
def sentences(stsb_dir: Path) -> tuple[list[str], list[str], list[float]]:
    from sentsim.data import read_stsbenchmark

    dev = read_stsbenchmark(stsb_dir, "dev").subset(200)
    return dev.sentences1, dev.sentences2, [float(s) for s in dev.scores]


@pytest.fixture(scope="module")
def models(bundled_model_dir: Path):
    from sentsim import SentenceTransformer

    return SentenceTransformer(str(bundled_model_dir)), st.SentenceTransformer(str(bundled_model_dir), device="cpu")


def test_embeddings_match(models, sentences):
    ours, theirs = models
    texts = sentences[0][:64]
    for options in ({}, {"normalize_embeddings": True}, {"truncate_dim": 128}, {"precision": "ubinary"}):
        mine = ours.encode(texts, batch_size=16, dtype="fp32", **options)
        reference = theirs.encode(texts, batch_size=16, **options)
        assert mine.shape == reference.shape and mine.dtype == reference.dtype
        np.testing.assert_allclose(mine.astype(np.float32), reference.astype(np.float32), atol=1e-5)
    np.testing.assert_allclose(ours.encode(texts[0], dtype="fp32"), theirs.encode(texts[0]), atol=1e-5)
    mine_tokens = ours.encode(texts[:4], output_value="token_embeddings", dtype="fp32")
    their_tokens = theirs.encode(texts[:4], output_value="token_embeddings")
    for a, b in zip(mine_tokens, their_tokens, strict=True):
        np.testing.assert_allclose(a.numpy(), b.numpy(), atol=1e-5)
    for precision in ("int8", "uint8", "binary", "ubinary"):  # one set of ranges over every token, as theirs
        mine_tokens = ours.encode(texts[:4], output_value="token_embeddings", precision=precision, dtype="fp32")
        their_tokens = theirs.encode(texts[:4], output_value="token_embeddings", precision=precision)
        for a, b in zip(mine_tokens, their_tokens, strict=True):
            assert isinstance(a, np.ndarray) and a.dtype == b.dtype and a.shape == b.shape, precision
            assert np.abs(a.astype(int) - b.astype(int)).max() <= 1, precision  # a bucket edge at most
    with pytest.raises(ValueError, match="output_value=None"):  # theirs fails on the feature dicts
        ours.encode(texts[:4], output_value=None, precision="int8")


def test_similarity_matrices_match(models, sentences):
    ours, theirs = models
    a = theirs.encode(sentences[0][:20])
    b = theirs.encode(sentences[1][:30])
    for name in ("cosine", "dot", "euclidean", "manhattan"):
        ours.similarity_fn_name = name
        theirs.similarity_fn_name = name
        np.testing.assert_allclose(ours.similarity(a, b).numpy(), theirs.similarity(a, b).numpy(), atol=1e-4
                                   if name == "manhattan" else 1e-5)
        np.testing.assert_allclose(ours.similarity_pairwise(a, b[:20]).numpy(),
                                   theirs.similarity_pairwise(a, b[:20]).numpy(), atol=1e-4
                                   if name == "manhattan" else 1e-5)
    ours.similarity_fn_name = theirs.similarity_fn_name = "cosine"


def _same_hits(mine: list, reference: list) -> None:
    assert len(mine) == len(reference)
    for hits, expected in zip(mine, reference, strict=True):
        assert [h["corpus_id"] for h in hits] == [h["corpus_id"] for h in expected]
        np.testing.assert_allclose([h["score"] for h in hits], [h["score"] for h in expected], atol=1e-5)


def _same_pairs(mine: list, reference: list) -> None:
    assert [(i, j) for _, i, j in mine] == [(i, j) for _, i, j in reference]
    np.testing.assert_allclose([s for s, _, _ in mine], [s for s, _, _ in reference], atol=1e-5)


@pytest.fixture(scope="module")
def unique_corpus(models, sentences):
    """Embeddings of distinct STSb dev sentences (STSb repeats some), so no two scores tie."""
    texts = list(dict.fromkeys(sentences[0] + sentences[1]))
    return texts, models[1].encode(texts, convert_to_tensor=True)


def test_util_similarity_functions_match(unique_corpus):
    from sentsim import util

    corpus = unique_corpus[1]
    a, b = corpus[:20], corpus[20:50]
    for mine, theirs in ((util.cos_sim, st.util.cos_sim), (util.dot_score, st.util.dot_score)):
        np.testing.assert_allclose(mine(a, b).numpy(), theirs(a, b).numpy(), atol=1e-5)
        np.testing.assert_allclose(mine(a[0], b.numpy()).numpy(), theirs(a[0], b.numpy()).numpy(), atol=1e-5)
    np.testing.assert_allclose(util.pairwise_cos_sim(a, b[:20]).numpy(), st.util.pairwise_cos_sim(a, b[:20]).numpy(),
                               atol=1e-5)
    np.testing.assert_allclose(util.normalize_embeddings(a * 3).numpy(), st.util.normalize_embeddings(a * 3).numpy(),
                               atol=1e-6)


def test_util_semantic_search_matches(unique_corpus):
    from sentsim import util

    corpus = unique_corpus[1]
    queries = corpus[::37]
    for options in ({}, {"top_k": 5}, {"top_k": 50, "query_chunk_size": 3, "corpus_chunk_size": 41},
                    {"top_k": len(corpus) + 5}):
        _same_hits(util.semantic_search(queries, corpus, **options),
                   st.util.semantic_search(queries, corpus, **options))
    _same_hits(util.semantic_search(queries, corpus, top_k=7, score_function=util.dot_score),
               st.util.semantic_search(queries, corpus, top_k=7, score_function=st.util.dot_score))
    _same_hits(util.semantic_search(queries[0].numpy(), corpus.numpy()),
               st.util.semantic_search(queries[0].numpy(), corpus.numpy()))


def test_util_paraphrase_mining_matches(models, unique_corpus):
    from sentsim import util

    ours, theirs = models
    texts, corpus = unique_corpus
    for options in ({}, {"top_k": 5}, {"top_k": 5, "max_pairs": 50}, {"top_k": 1, "max_pairs": 10},
                    {"top_k": 20, "max_pairs": 200, "query_chunk_size": 17, "corpus_chunk_size": 29}):
        _same_pairs(util.paraphrase_mining_embeddings(corpus, **options),
                    st.util.paraphrase_mining_embeddings(corpus, **options))
    # the model path: sentsim encodes with its own forward pass (fp32 here, as "auto" may pick bf16)
    fp32 = SimpleNamespace(encode=functools.partial(ours.encode, dtype="fp32"))
    _same_pairs(util.paraphrase_mining(fp32, texts[:120], top_k=5, max_pairs=40),
                st.util.paraphrase_mining(theirs, texts[:120], top_k=5, max_pairs=40))


def test_util_community_detection_and_quantize_match(unique_corpus):
    from sentsim import util

    corpus = unique_corpus[1]
    for threshold, size, batch_size in ((0.8, 2, 1024), (0.6, 3, 50), (0.7, 5, 1024), (0.95, 2, 7)):
        mine = util.community_detection(corpus, threshold=threshold, min_community_size=size, batch_size=batch_size)
        reference = st.util.community_detection(corpus, threshold=threshold, min_community_size=size,
                                                batch_size=batch_size)
        assert mine == reference
    assert any(util.community_detection(corpus, threshold=0.6, min_community_size=3))
    embeddings = corpus.numpy()
    calibration, ranges = embeddings[100:], np.vstack((embeddings.min(axis=0) - 0.01, embeddings.max(axis=0)))
    for precision in ("int8", "uint8", "binary", "ubinary"):
        for options in ({}, {"calibration_embeddings": calibration}, {"ranges": ranges}):
            mine = util.quantize_embeddings(embeddings[:100], precision=precision, **options)
            reference = st.util.quantize_embeddings(embeddings[:100], precision=precision, **options)
            assert mine.dtype == reference.dtype
            np.testing.assert_array_equal(mine, reference)
        np.testing.assert_array_equal(util.quantize_embeddings(corpus, precision=precision),
                                      st.util.quantize_embeddings(corpus, precision=precision))


def test_evaluator_keys_and_values_match(models, sentences, tmp_path: Path):
    from sentence_transformers.sentence_transformer.evaluation import EmbeddingSimilarityEvaluator as their_evaluator

    from sentsim.evaluation import EmbeddingSimilarityEvaluator

    ours, theirs = models
    s1, s2, scores = sentences
    for options in ({"name": "sts-dev"}, {"similarity_fn_names": ["cosine", "dot", "euclidean", "manhattan"]},
                    {"name": "q", "precision": "int8"}):
        mine_eval = EmbeddingSimilarityEvaluator(s1, s2, scores, dtype="fp32", **options)
        their_eval = their_evaluator(s1, s2, scores, **options)
        mine = mine_eval(ours, output_path=str(tmp_path / "ours"))
        reference = their_eval(theirs, output_path=str(tmp_path / "theirs"))
        assert set(mine) == set(reference) and mine_eval.primary_metric == their_eval.primary_metric
        for key, value in reference.items():
            assert mine[key] == pytest.approx(value, abs=1e-5), key
        assert (tmp_path / "ours" / mine_eval.csv_file).read_text().splitlines()[0] == \
            (tmp_path / "theirs" / their_eval.csv_file).read_text().splitlines()[0]
