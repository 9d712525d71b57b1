"""sentsim's drop-in calls against sentence-transformers 6.2 on the bundled all-MiniLM-L6-v2, in fp32.

sentence-transformers is a dev dependency: only these tests (and test_interop) import it.
"""

from __future__ import annotations

from pathlib import Path

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


def test_util_functions_match(models, sentences):
    from sentsim import util

    _, theirs = models
    corpus = theirs.encode(sentences[0] + sentences[1], convert_to_tensor=True)
    queries = corpus[:10]
    np.testing.assert_allclose(util.cos_sim(queries, corpus).numpy(), st.util.cos_sim(queries, corpus).numpy(),
                               atol=1e-5)
    mine = util.semantic_search(queries, corpus, top_k=5)
    reference = st.util.semantic_search(queries, corpus, top_k=5)
    for hits, expected in zip(mine, reference, strict=True):
        np.testing.assert_allclose([h["score"] for h in hits], [h["score"] for h in expected], atol=1e-5)
        # STSb repeats sentences, so equal scores may list their ids in either order
        assert {h["corpus_id"] for h in hits} == {h["corpus_id"] for h in expected}
    mined = util.paraphrase_mining_embeddings(corpus, top_k=5, max_pairs=50)
    expected_pairs = st.util.paraphrase_mining_embeddings(corpus, top_k=5, max_pairs=50)
    # Repeated STSb sentences tie at the max_pairs cut, so the pairs kept at equal scores may differ
    full = st.util.cos_sim(corpus, corpus).numpy()
    assert all(abs(full[i, j] - score) < 1e-5 and i < j for score, i, j in mined)
    np.testing.assert_allclose([s for s, _, _ in mined], [s for s, _, _ in expected_pairs], atol=1e-5)
    assert util.community_detection(corpus, threshold=0.8, min_community_size=2) == \
        st.util.community_detection(corpus, threshold=0.8, min_community_size=2)
    calibration = corpus.numpy()
    for precision in ("int8", "uint8", "binary", "ubinary"):
        np.testing.assert_array_equal(util.quantize_embeddings(calibration, precision=precision),
                                      st.util.quantize_embeddings(calibration, precision=precision))


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
