"""RerankingEvaluator: MAP, MRR@k and tie-averaged NDCG@k as sentence-transformers' (and scikit-learn's)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from tests.conftest import TRAIN_PAIRS

TEXTS = [text for a, b, _ in TRAIN_PAIRS for text in (a, b)]
SAMPLES = [{"query": TEXTS[0], "positive": [TEXTS[1], TEXTS[4]], "negative": TEXTS[5:9]},
           {"query": TEXTS[2], "positive": TEXTS[3], "negative": [TEXTS[6], TEXTS[9]]},
           {"query": TEXTS[10], "positive": [TEXTS[11]], "negative": []},  # no negative: left out
           {"query": TEXTS[7], "positive": [TEXTS[8], TEXTS[0]], "negative": TEXTS[1:4]}]


@pytest.mark.parametrize("seed", range(8))
def test_ndcg_averages_ties_as_scikit_learn(seed):
    metrics = pytest.importorskip("sklearn.metrics")
    from sentsim.evaluation.reranking import ndcg_at

    generator = np.random.default_rng(seed)
    size = int(generator.integers(2, 30))
    relevance = generator.integers(0, 2, size)
    scores = np.round(generator.normal(size=size), int(generator.integers(0, 2)))  # rounded: ties
    k = int(generator.integers(1, size + 2))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = metrics.ndcg_score([relevance], [scores], k=k)
    assert ndcg_at(relevance, scores, k) == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("batched", [True, False])
def test_the_evaluator_equals_sentence_transformers_on_a_sentsim_model(tiny_transformer_dir, tmp_path, batched):
    from sentsim import SentenceTransformer
    from sentsim.evaluation import RerankingEvaluator

    model = SentenceTransformer(str(tiny_transformer_dir))
    for method in ("encode", "encode_query", "encode_document"):
        original = getattr(model, method)
        setattr(model, method, lambda *args, _original=original, **options: _original(
            *args, **{**options, "dtype": "fp32"}))
    ours = RerankingEvaluator(SAMPLES, at_k=2, name="dups", use_batched_encoding=batched)
    results = ours(model, output_path=str(tmp_path / "ours"), epoch=0, steps=4)
    assert len(ours.samples) == 3 and ours.primary_metric == "dups_ndcg@2"
    evaluation = pytest.importorskip("sentence_transformers.evaluation")
    theirs = evaluation.RerankingEvaluator(SAMPLES, at_k=2, name="dups", use_batched_encoding=batched)
    assert results == pytest.approx(theirs(model, output_path=str(tmp_path / "theirs"), epoch=0, steps=4), abs=1e-6)
    assert list(results) == ["dups_map", "dups_mrr@2", "dups_ndcg@2"]
    rows = [np.array((tmp_path / side / ours.csv_file).read_text().splitlines()[1].split(","), dtype=float)
            for side in ("ours", "theirs")]
    assert np.allclose(*rows, atol=1e-6)
    as_dict = RerankingEvaluator({index: sample for index, sample in enumerate(SAMPLES)}, at_k=2, name="dups")
    assert as_dict(model) == pytest.approx(results)


def test_samples_without_both_kinds_leave_nothing_to_evaluate():
    from sentsim.errors import ConfigError
    from sentsim.evaluation import RerankingEvaluator

    with pytest.raises(ConfigError, match="both a positive and a negative"):
        RerankingEvaluator([{"query": "q", "positive": ["a"], "negative": []}]).compute_metrics(object())
    with pytest.raises(ConfigError, match="query, positive and negative"):
        RerankingEvaluator([{"query": "q", "positive": ["a"]}])
