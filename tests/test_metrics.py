"""Tests for sentsim.metrics: agreement with scipy, and known-answer bootstrap cases."""

from __future__ import annotations

import time

import numpy as np
import pytest
from scipy import stats

from sentsim.errors import ConfigError
from sentsim.evaluation import metrics


@pytest.fixture
def sts_like() -> tuple[np.ndarray, np.ndarray]:
    """1,379 pairs (STSb test size) with tied gold scores in 0.2 steps and a noisy predictor."""
    rng = np.random.default_rng(42)
    gold = rng.integers(0, 26, size=1379) / 5.0
    predicted = gold + rng.normal(0.0, 1.2, size=gold.size)
    return gold, predicted


def test_pairwise_similarities_match_direct_formulas():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(20, 8)).astype(np.float32)
    b = rng.normal(size=(20, 8)).astype(np.float32)
    sims = metrics.pairwise_similarities(a, b)
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    for i in range(len(a)):
        dot = float(a64[i] @ b64[i])
        assert sims["dot"][i] == pytest.approx(dot)
        assert sims["cosine"][i] == pytest.approx(dot / np.linalg.norm(a64[i]) / np.linalg.norm(b64[i]))
        assert sims["euclidean"][i] == pytest.approx(-np.linalg.norm(a64[i] - b64[i]))
        assert sims["manhattan"][i] == pytest.approx(-np.abs(a64[i] - b64[i]).sum())
    assert all(values.dtype == np.float64 for values in sims.values())


def test_zero_vector_has_zero_cosine():
    sims = metrics.pairwise_similarities(np.zeros((1, 3)), np.ones((1, 3)))
    assert sims["cosine"][0] == 0.0


def test_similarity_report_matches_scipy():
    rng = np.random.default_rng(1)
    a = rng.normal(size=(50, 6))
    b = a + rng.normal(scale=0.8, size=a.shape)
    gold = rng.uniform(0, 1, size=50)
    report = metrics.similarity_report(gold, a, b)
    sims = metrics.pairwise_similarities(a, b)
    assert set(report) == {f"{kind}_{m}" for kind in ("pearson", "spearman") for m in sims}
    for measure, values in sims.items():
        assert report[f"pearson_{measure}"] == pytest.approx(100 * stats.pearsonr(gold, values).statistic)
        assert report[f"spearman_{measure}"] == pytest.approx(100 * stats.spearmanr(gold, values).statistic)


def test_spearman_pearson_mae(sts_like):
    gold, predicted = sts_like
    assert metrics.spearman(gold, predicted) == pytest.approx(100 * stats.spearmanr(gold, predicted)[0])
    assert metrics.pearson(gold, predicted) == pytest.approx(100 * stats.pearsonr(gold, predicted)[0])
    assert metrics.mean_absolute_error([1.0, 2.0, 3.0], [1.5, 2.0, 2.0]) == pytest.approx(0.5)
    assert np.isnan(metrics.spearman([1.0, 1.0, 1.0], [1.0, 2.0, 3.0]))


def test_resampled_ranks_match_rankdata(sts_like):
    gold, predicted = sts_like
    indices = np.random.default_rng(3).integers(0, gold.size, size=(20, gold.size))
    for values in (gold, predicted):
        expected = stats.rankdata(values[indices], axis=1)
        assert np.allclose(metrics._resampled_ranks(values, indices), expected)


def test_bootstrap_perfect_correlation_gives_degenerate_interval():
    gold = np.linspace(0, 5, 200)
    low, high = metrics.bootstrap_ci(gold, 2 * gold + 1, n_resamples=200)
    assert low == pytest.approx(100.0) and high == pytest.approx(100.0)
    low, high = metrics.bootstrap_ci(gold, gold**3, metric="pearson", n_resamples=200)
    assert low < high < 100.0


def test_bootstrap_independent_scores_interval_contains_zero():
    rng = np.random.default_rng(7)
    low, high = metrics.bootstrap_ci(rng.normal(size=500), rng.normal(size=500))
    assert low < 0.0 < high


def test_bootstrap_interval_contains_estimate_and_is_reproducible(sts_like):
    gold, predicted = sts_like
    low, high = metrics.bootstrap_ci(gold, predicted, seed=11)
    assert low < metrics.spearman(gold, predicted) < high
    assert high - low < 10.0
    assert metrics.bootstrap_ci(gold, predicted, seed=11) == (low, high)
    assert metrics.bootstrap_ci(gold, predicted, seed=12) != (low, high)


def test_bootstrap_does_not_depend_on_chunking(sts_like, monkeypatch):
    gold, predicted = sts_like
    whole = metrics.bootstrap_ci(gold, predicted, n_resamples=300)
    monkeypatch.setattr(metrics, "_CHUNK_ELEMENTS", gold.size * 7)
    assert metrics.bootstrap_ci(gold, predicted, n_resamples=300) == pytest.approx(whole)


def test_bootstrap_is_fast(sts_like):
    gold, predicted = sts_like
    start = time.perf_counter()
    metrics.bootstrap_ci(gold, predicted, n_resamples=1000)
    # Budget is well under a second; the bound is loose because CI machines are shared.
    assert time.perf_counter() - start < 2.0


def test_paired_bootstrap_model_against_itself(sts_like):
    gold, predicted = sts_like
    result = metrics.paired_bootstrap(gold, predicted, predicted, n_resamples=200)
    assert result.difference == 0.0
    assert result.ci_low == 0.0 and result.ci_high == 0.0
    assert result.p_value == pytest.approx(1.0)
    assert result.n_resamples == 200


def test_paired_bootstrap_detects_clearly_better_predictor(sts_like):
    gold, better = sts_like
    worse = better + np.random.default_rng(5).normal(0.0, 1.5, size=gold.size)
    result = metrics.paired_bootstrap(gold, better, worse, n_resamples=500)
    assert result.difference > 0.0
    assert 0.0 < result.ci_low < result.difference < result.ci_high
    assert result.p_value < 0.05
    assert result.p_value >= 1 / 501
    flipped = metrics.paired_bootstrap(gold, worse, better, n_resamples=500)
    assert flipped.difference == pytest.approx(-result.difference)
    assert flipped.p_value == pytest.approx(result.p_value)


def test_paired_bootstrap_indistinguishable_predictors_are_not_significant():
    rng = np.random.default_rng(9)
    gold = rng.uniform(0, 5, size=300)
    noise = rng.normal(0, 1.0, size=(2, 300))
    result = metrics.paired_bootstrap(gold, gold + noise[0], gold + noise[1], n_resamples=500)
    assert result.ci_low < 0.0 < result.ci_high
    assert result.p_value > 0.05


def test_paired_bootstrap_pearson_and_seed_reproducibility(sts_like):
    gold, predicted = sts_like
    other = predicted**3
    options = {"metric": "pearson", "n_resamples": 100, "seed": 3}
    first = metrics.paired_bootstrap(gold, predicted, other, **options)
    assert first == metrics.paired_bootstrap(gold, predicted, other, **options)
    assert first.difference == pytest.approx(metrics.pearson(gold, predicted) - metrics.pearson(gold, other))


@pytest.mark.parametrize(
    "options",
    [{"metric": "kendall"}, {"n_resamples": 0}, {"confidence": 1.0}, {"confidence": 0.0}],
)
def test_bootstrap_option_errors(options):
    with pytest.raises(ConfigError):
        metrics.bootstrap_ci([1.0, 2.0, 3.0], [1.0, 3.0, 2.0], **options)
    with pytest.raises(ConfigError):
        metrics.paired_bootstrap([1.0, 2.0, 3.0], [1.0, 3.0, 2.0], [3.0, 2.0, 1.0], **options)


def test_length_mismatch_is_an_error():
    with pytest.raises(ValueError):
        metrics.spearman([1.0, 2.0, 3.0], [1.0, 2.0])


def test_by_genre_skips_small_genres():
    gold = np.array([1.0, 2.0, 3.0, 4.0, 1.0, 2.0, 3.0, 1.0, 2.0])
    predicted = np.array([1.0, 2.0, 3.0, 4.0, 3.0, 2.0, 1.0, 5.0, 6.0])
    genres = ["news"] * 4 + ["forum"] * 3 + ["captions"] * 2
    result = metrics.by_genre(gold, predicted, genres)
    assert result == {"forum": pytest.approx(-100.0), "news": pytest.approx(100.0)}
    assert list(result) == ["forum", "news"]


def test_nearly_constant_similarities_warn_in_sentsims_words():
    import warnings

    from scipy import stats

    from sentsim.errors import NearConstantScoresWarning
    from sentsim.evaluation.metrics import pearson

    gold, nearly_flat = np.arange(10.0), np.ones(10) + np.arange(10) * 1e-13
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        pearson(gold, nearly_flat)
    assert [item.category for item in caught] == [NearConstantScoresWarning]
    assert not any(issubclass(item.category, stats.NearConstantInputWarning) for item in caught)
