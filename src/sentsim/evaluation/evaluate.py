"""The metrics stage for a model: encode a pair set, then correlations, intervals and per-genre scores."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from sentsim.data import PairDataset, genre_name
from sentsim.evaluation.binary_classification import binary_report
from sentsim.evaluation.metrics import bootstrap_ci, by_genre, pairwise_similarities, similarity_report
from sentsim.inference.pairs import encode_pairs


@dataclass
class EvaluationResult:
    """Correlations ×100 of one model on one pair set, with what reports need to explain them."""

    metrics: dict[str, float]
    cosines: np.ndarray
    gold: np.ndarray
    per_genre: dict[str, float] = field(default_factory=dict)
    confidence_intervals: dict[str, tuple[float, float]] = field(default_factory=dict)
    #: For 0/1-style gold scores (two values): per measure, the best one-threshold classifier's
    #: accuracy, F1, precision, recall, AP and MCC ×100, with its thresholds (see ``binary_report``).
    binary: dict[str, dict[str, float]] = field(default_factory=dict)

    @property
    def spearman_cosine(self) -> float:
        return self.metrics["spearman_cosine"]

    def to_dict(self) -> dict[str, Any]:
        """Flat JSON: ``spearman_cosine`` etc., ``<metric>_ci`` pairs, ``per_genre``, ``binary`` (two-valued
        gold scores only) and ``n_pairs``."""
        result: dict[str, Any] = {name: round(value, 4) for name, value in self.metrics.items()}
        for name, (low, high) in self.confidence_intervals.items():
            result[f"{name}_ci"] = [round(low, 4), round(high, 4)]
        if self.per_genre:
            result["per_genre"] = {name: round(value, 4) for name, value in self.per_genre.items()}
        if self.binary:
            result["binary"] = {measure: {name: round(value, 4) for name, value in values.items()}
                                for measure, values in self.binary.items()}
        result["n_pairs"] = int(self.gold.size)
        return result


def evaluate_pairs(
    model,
    dataset: PairDataset,
    *,
    batch_size: int = 64,
    dtype: str = "auto",
    bootstrap: int = 0,
    seed: int = 0,
    show_progress: bool | None = None,
) -> EvaluationResult:
    """Scores ``model`` on ``dataset``: Pearson/Spearman of gold vs cosine, dot, euclidean, manhattan.

    ``bootstrap`` > 0 adds a 95% percentile interval to every figure (pairs resampled, seeded), so
    a difference of a few tenths can be told apart from noise.
    """
    embeddings_a, embeddings_b = encode_pairs(model, dataset.sentences1, dataset.sentences2,
                                              batch_size=batch_size, dtype=dtype,
                                              show_progress=show_progress)
    return score_embeddings(dataset, embeddings_a, embeddings_b, bootstrap=bootstrap, seed=seed)


def spearman_by_dimension(model, dataset: PairDataset, *, dims: Sequence[int], batch_size: int = 64,
                          dtype: str = "auto") -> dict[int, float]:
    """Spearman(cosine) ×100 with each number of leading dimensions kept, largest first: how a
    Matryoshka-trained model holds up shortened. Encodes once, at full size, and slices."""
    embeddings_a, embeddings_b = encode_pairs(model, dataset.sentences1, dataset.sentences2, batch_size=batch_size,
                                              dtype=dtype, truncate_dim=None)
    full = embeddings_a.shape[1]
    return {dim: score_embeddings(dataset, embeddings_a[:, :dim], embeddings_b[:, :dim]).metrics["spearman_cosine"]
            for dim in sorted({min(int(dim), full) for dim in dims}, reverse=True)}


def score_embeddings(dataset: PairDataset, embeddings_a: np.ndarray, embeddings_b: np.ndarray, *,
                     bootstrap: int = 0, seed: int = 0) -> EvaluationResult:
    gold = dataset.scores
    metrics = similarity_report(gold, embeddings_a, embeddings_b)
    similarities = pairwise_similarities(embeddings_a, embeddings_b)
    intervals: dict[str, tuple[float, float]] = {}
    if bootstrap:
        for name in metrics:
            kind, measure = name.split("_", 1)
            intervals[name] = bootstrap_ci(gold, similarities[measure], metric=kind, n_resamples=bootstrap,
                                           seed=seed)
    per_genre = genre_spearman(dataset, similarities["cosine"])
    return EvaluationResult(metrics=metrics, cosines=similarities["cosine"], gold=gold, per_genre=per_genre,
                            confidence_intervals=intervals, binary=binary_report(gold, similarities))


def genre_spearman(dataset: PairDataset, predicted: np.ndarray) -> dict[str, float]:
    """Spearman ×100 per genre (news, captions, forum) when every pair has one, else nothing."""
    genres = [genre_name(genre) for genre in dataset.genres]
    return by_genre(dataset.scores, predicted, genres) if all(genres) else {}


def __getattr__(name: str):
    # The evaluators moved to sentsim.evaluation.evaluators; this keeps the old import path working.
    if name == "EmbeddingSimilarityEvaluator":
        from sentsim.evaluation.evaluators import EmbeddingSimilarityEvaluator

        return EmbeddingSimilarityEvaluator
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
