"""Correlation metrics between gold scores and embedding similarities, with bootstrap confidence intervals.

Correlations are reported ×100, the convention of STS papers and of sentence-transformers'
``EmbeddingSimilarityEvaluator``, so numbers can be compared with published tables directly.

The bootstrap functions answer "how much of a difference between two models is noise?": STSb test has
only 1,379 pairs, and differences below about one Spearman point are often not significant.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

from sentsim.errors import ConfigError, NearConstantScoresWarning

__all__ = [
    "METRICS",
    "PairedComparison",
    "bootstrap_ci",
    "by_genre",
    "mean_absolute_error",
    "paired_bootstrap",
    "pairwise_similarities",
    "pearson",
    "similarity_report",
    "spearman",
]

METRICS = ("spearman", "pearson")
"""Names accepted by the ``metric`` option of the bootstrap functions."""

SIMILARITIES = ("cosine", "dot", "euclidean", "manhattan")

# Resampled index matrices are built in chunks of about this many elements (8 bytes each), so a
# 10,000-pair test set with 10,000 resamples stays at tens of MB instead of gigabytes.
_CHUNK_ELEMENTS = 2_000_000


def _as_pair_embeddings(embeddings_a: np.ndarray, embeddings_b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a = np.asarray(embeddings_a, dtype=np.float64)
    b = np.asarray(embeddings_b, dtype=np.float64)
    if a.ndim != 2 or a.shape != b.shape:
        raise ValueError(
            f"embeddings must both be (pairs, dim) with the same shape, got {a.shape} and {b.shape}"
        )
    return a, b


def _as_scores(*arrays: np.ndarray, minimum: int = 2) -> list[np.ndarray]:
    out = [np.asarray(array, dtype=np.float64).reshape(-1) for array in arrays]
    lengths = {len(array) for array in out}
    if len(lengths) != 1:
        raise ValueError(f"score arrays must have the same length, got lengths {[len(a) for a in out]}")
    if out[0].size < minimum:
        raise ValueError(f"need at least {minimum} pairs to compute a correlation, got {out[0].size}")
    return out


def pairwise_similarities(embeddings_a: np.ndarray, embeddings_b: np.ndarray) -> dict[str, np.ndarray]:
    """Similarity of each pair ``(embeddings_a[i], embeddings_b[i])`` under four measures, in float64.

    Distances are negated so that, for every key, larger means more similar and a positive correlation
    with the gold scores is good. Float64 because float32 dot products over 768+ dimensions lose enough
    precision to change ranks between near-tied pairs.

    A zero vector has cosine 0 with anything rather than NaN, as in scikit-learn's
    ``paired_cosine_distances``, so one degenerate embedding does not make the whole metric NaN.

    Args:
        embeddings_a: ``(pairs, dim)`` first sentences.
        embeddings_b: ``(pairs, dim)`` second sentences.

    Returns:
        ``{"cosine", "dot", "euclidean", "manhattan"}`` → ``(pairs,)`` arrays.
    """
    a, b = _as_pair_embeddings(embeddings_a, embeddings_b)
    dot = np.einsum("ij,ij->i", a, b)
    norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    cosine = np.divide(dot, norms, out=np.zeros_like(dot), where=norms > 0)
    difference = a - b
    return {
        "cosine": cosine,
        "dot": dot,
        "euclidean": -np.linalg.norm(difference, axis=1),
        "manhattan": -np.abs(difference).sum(axis=1),
    }


def spearman(gold: np.ndarray, predicted: np.ndarray) -> float:
    """Spearman rank correlation ×100; NaN when either side is constant (the correlation is undefined)."""
    gold, predicted = _as_scores(gold, predicted)
    with _correlation_warnings():
        return float(stats.spearmanr(gold, predicted).statistic) * 100.0


def pearson(gold: np.ndarray, predicted: np.ndarray) -> float:
    """Pearson linear correlation ×100; NaN when either side is constant (the correlation is undefined)."""
    gold, predicted = _as_scores(gold, predicted)
    with _correlation_warnings():
        return float(stats.pearsonr(gold, predicted).statistic) * 100.0


@contextlib.contextmanager
def _correlation_warnings() -> Iterator[None]:
    """scipy's warnings about its inputs, in sentsim's words: a constant input is reported by the NaN result
    alone; a nearly constant one by one :class:`NearConstantScoresWarning` line (not scipy's, with its path)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("ignore", stats.ConstantInputWarning)
        warnings.simplefilter("always", stats.NearConstantInputWarning)
        yield
    for item in caught:  # anything else passes through as it was raised
        if not issubclass(item.category, stats.NearConstantInputWarning):
            warnings.warn_explicit(item.message, item.category, item.filename, item.lineno)
    if any(issubclass(item.category, stats.NearConstantInputWarning) for item in caught):
        warnings.warn("the similarities (or gold scores) are nearly all equal, as an untrained or collapsed model "
                      "gives them: their correlation is ill-determined", NearConstantScoresWarning, stacklevel=3)


def similarity_report(
    gold: np.ndarray, embeddings_a: np.ndarray, embeddings_b: np.ndarray
) -> dict[str, float]:
    """Pearson and Spearman ×100 of the gold scores against every similarity measure.

    Keys are ``pearson_<measure>`` and ``spearman_<measure>`` for measure in cosine, dot, euclidean and
    manhattan — the same names sentence-transformers' evaluator writes, so reports are comparable.

    Args:
        gold: ``(pairs,)`` gold scores (any scale; correlations do not depend on it).
        embeddings_a: ``(pairs, dim)`` first sentences.
        embeddings_b: ``(pairs, dim)`` second sentences.
    """
    similarities = pairwise_similarities(embeddings_a, embeddings_b)
    report: dict[str, float] = {}
    for measure in SIMILARITIES:
        report[f"pearson_{measure}"] = pearson(gold, similarities[measure])
        report[f"spearman_{measure}"] = spearman(gold, similarities[measure])
    return report


def mean_absolute_error(a: np.ndarray, b: np.ndarray) -> float:
    """Mean of ``|a − b|``; used to judge calibrated scores on the gold scale, where correlation is blind."""
    a, b = _as_scores(a, b, minimum=1)
    return float(np.mean(np.abs(a - b)))


def by_genre(gold: np.ndarray, predicted: np.ndarray, genres: Sequence[str]) -> dict[str, float]:
    """Spearman ×100 within each genre (STSb: news, captions, forum), sorted by genre name.

    A model can win overall while losing on one genre; this shows where. Genres with fewer than 3 pairs
    are left out because a rank correlation over two points is always ±100 and says nothing.

    Args:
        gold: ``(pairs,)`` gold scores.
        predicted: ``(pairs,)`` predicted similarities.
        genres: genre label of each pair.
    """
    gold, predicted = _as_scores(gold, predicted, minimum=0)
    labels = np.asarray([str(genre) for genre in genres], dtype=object)
    if len(labels) != len(gold):
        raise ValueError(f"got {len(labels)} genre labels for {len(gold)} pairs")
    result: dict[str, float] = {}
    for genre in sorted(set(labels)):
        mask = labels == genre
        if mask.sum() >= 3:
            result[genre] = spearman(gold[mask], predicted[mask])
    return result


# --- bootstrap ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PairedComparison:
    """Result of :func:`paired_bootstrap`: is model A better than model B on this data, beyond noise?

    Attributes:
        difference: metric(A) − metric(B) on the full data, ×100 (Spearman/Pearson points).
        ci_low: lower percentile-bootstrap bound of the difference.
        ci_high: upper percentile-bootstrap bound of the difference.
        p_value: two-sided bootstrap p-value for "no difference", in ``[1/(n_resamples+1), 1]``.
        n_resamples: number of bootstrap resamples used.
    """

    difference: float
    ci_low: float
    ci_high: float
    p_value: float
    n_resamples: int


def _check_bootstrap_options(metric: str, n_resamples: int, confidence: float) -> None:
    if metric not in METRICS:
        raise ConfigError(f"unknown metric {metric!r}: valid metrics are {', '.join(METRICS)}")
    if isinstance(n_resamples, bool) or not isinstance(n_resamples, int | np.integer) or n_resamples < 1:
        raise ConfigError(f"n_resamples (--bootstrap) must be a positive integer, got {n_resamples!r}")
    if not 0.0 < confidence < 1.0:
        raise ConfigError(f"confidence must be strictly between 0 and 1, got {confidence!r}")


def _resample_indices(n_pairs: int, n_resamples: int, seed: int) -> Iterator[np.ndarray]:
    """Yield ``(chunk, n_pairs)`` blocks of indices drawn with replacement, ``n_resamples`` rows in total.

    One generator drives all chunks, so the resamples depend only on the seed, not on the chunk size,
    and two metrics computed on the same seed see the same resampled pairs.
    """
    rng = np.random.default_rng(seed)
    chunk = max(1, _CHUNK_ELEMENTS // max(n_pairs, 1))
    for start in range(0, n_resamples, chunk):
        yield rng.integers(0, n_pairs, size=(min(chunk, n_resamples - start), n_pairs))


def _resampled_ranks(values: np.ndarray, indices: np.ndarray) -> np.ndarray:
    """Average (tie-aware) ranks of ``values[indices]`` within each row, without sorting each row.

    Every resample only contains original values, so ranks follow from how often each distinct value
    was drawn: a value drawn ``c`` times after ``k`` smaller draws gets the average rank ``k + (c + 1)/2``.
    Counting draws is O(rows × pairs), several times faster than ``scipy.stats.rankdata(axis=1)``.
    """
    distinct, value_ids = np.unique(values, return_inverse=True)
    rows = indices.shape[0]
    drawn_ids = value_ids[indices]
    offsets = np.arange(rows)[:, None] * distinct.size
    counts = np.bincount((drawn_ids + offsets).ravel(), minlength=rows * distinct.size)
    counts = counts.reshape(rows, distinct.size).astype(np.float64)
    average_rank = np.cumsum(counts, axis=1) - (counts - 1.0) / 2.0
    return np.take_along_axis(average_rank, drawn_ids, axis=1)


def _rowwise_pearson(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Pearson correlation of each row of ``x`` with the same row of ``y``; NaN for a constant row."""
    x = x - x.mean(axis=1, keepdims=True)
    y = y - y.mean(axis=1, keepdims=True)
    denominator = np.sqrt(np.einsum("ij,ij->i", x, x) * np.einsum("ij,ij->i", y, y))
    numerator = np.einsum("ij,ij->i", x, y)
    with np.errstate(invalid="ignore", divide="ignore"):
        correlation = np.where(denominator > 0, numerator / denominator, np.nan)
    return np.clip(correlation, -1.0, 1.0)


def _resampled_metric(
    gold_stat: np.ndarray, predicted: np.ndarray, indices: np.ndarray, metric: str
) -> np.ndarray:
    """Metric ×100 per resample row; ``gold_stat`` is the gold side already ranked (Spearman) or gathered."""
    predicted_stat = _resampled_ranks(predicted, indices) if metric == "spearman" else predicted[indices]
    return _rowwise_pearson(gold_stat, predicted_stat) * 100.0


def _gold_stat(gold: np.ndarray, indices: np.ndarray, metric: str) -> np.ndarray:
    return _resampled_ranks(gold, indices) if metric == "spearman" else gold[indices]


def _full_metric(gold: np.ndarray, predicted: np.ndarray, metric: str) -> float:
    return spearman(gold, predicted) if metric == "spearman" else pearson(gold, predicted)


def _percentile_interval(samples: np.ndarray, confidence: float) -> tuple[float, float]:
    finite = samples[np.isfinite(samples)]
    if finite.size == 0:
        # Every resample was degenerate (e.g. constant scores); there is no interval to report.
        return float("nan"), float("nan")
    tail = (1.0 - confidence) / 2.0 * 100.0
    low, high = np.percentile(finite, [tail, 100.0 - tail])
    return float(low), float(high)


def bootstrap_ci(
    gold: np.ndarray,
    predicted: np.ndarray,
    *,
    metric: str = "spearman",
    n_resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile-bootstrap confidence interval of a correlation ×100, resampling pairs with replacement.

    Pairs (not scores) are resampled because the test set is the random draw; the model is fixed.
    Resamples whose scores happen to be constant (only possible on tiny data) are left out.

    Args:
        gold: ``(pairs,)`` gold scores.
        predicted: ``(pairs,)`` predicted similarities.
        metric: ``"spearman"`` or ``"pearson"``.
        n_resamples: number of bootstrap resamples; 1,000 gives bounds stable to about ±0.1 points on STSb.
        confidence: coverage of the interval, e.g. 0.95.
        seed: seed of the resampling, so reported intervals can be reproduced exactly.

    Returns:
        ``(low, high)`` bounds, ×100.

    Raises:
        ConfigError: for an unknown metric or an out-of-range option.
    """
    _check_bootstrap_options(metric, n_resamples, confidence)
    gold, predicted = _as_scores(gold, predicted)
    samples = np.concatenate(
        [
            _resampled_metric(_gold_stat(gold, indices, metric), predicted, indices, metric)
            for indices in _resample_indices(gold.size, n_resamples, seed)
        ]
    )
    return _percentile_interval(samples, confidence)


def paired_bootstrap(
    gold: np.ndarray,
    predicted_a: np.ndarray,
    predicted_b: np.ndarray,
    *,
    metric: str = "spearman",
    n_resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> PairedComparison:
    """Paired bootstrap comparison of two predictors on the same pairs.

    Both predictors are scored on the *same* resampled pairs, so the variation that comes from which pairs
    happen to be in the test set cancels out, and the interval of A − B is much tighter than comparing two
    separate intervals. The two-sided p-value is twice the fraction of resampled differences on the
    other side of zero from the observed one (ties at zero count against significance), capped at 1
    and floored at ``1/(n_resamples + 1)`` because a finite bootstrap cannot show anything smaller.

    Args:
        gold: ``(pairs,)`` gold scores.
        predicted_a: ``(pairs,)`` similarities of model A.
        predicted_b: ``(pairs,)`` similarities of model B.
        metric: ``"spearman"`` or ``"pearson"``.
        n_resamples: number of bootstrap resamples.
        confidence: coverage of the interval of the difference.
        seed: seed of the resampling.

    Raises:
        ConfigError: for an unknown metric or an out-of-range option.
    """
    _check_bootstrap_options(metric, n_resamples, confidence)
    gold, predicted_a, predicted_b = _as_scores(gold, predicted_a, predicted_b)
    difference = _full_metric(gold, predicted_a, metric) - _full_metric(gold, predicted_b, metric)
    chunks = []
    for indices in _resample_indices(gold.size, n_resamples, seed):
        gold_stat = _gold_stat(gold, indices, metric)
        chunks.append(
            _resampled_metric(gold_stat, predicted_a, indices, metric)
            - _resampled_metric(gold_stat, predicted_b, indices, metric)
        )
    differences = np.concatenate(chunks)
    ci_low, ci_high = _percentile_interval(differences, confidence)
    finite = differences[np.isfinite(differences)]
    if finite.size == 0 or not np.isfinite(difference):
        p_value = float("nan")
    elif difference == 0.0:
        p_value = 1.0
    else:
        other_side = finite <= 0.0 if difference > 0.0 else finite >= 0.0
        p_value = min(1.0, 2.0 * float(other_side.mean()))
        p_value = max(p_value, 1.0 / (n_resamples + 1))
    return PairedComparison(
        difference=float(difference),
        ci_low=ci_low,
        ci_high=ci_high,
        p_value=p_value,
        n_resamples=int(n_resamples),
    )
