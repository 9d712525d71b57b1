"""Evaluators: callables ``evaluator(model) -> metrics`` for training loops and scripts.

``EmbeddingSimilarityEvaluator`` is sentence-transformers' evaluator with their constructor, keys,
values (correlations in 0–1) and CSV, and ``SequentialEvaluator`` runs several as one;
``PairSetEvaluator`` is sentsim's own dev scorer (×100, all four similarities, per genre) that
``sentsim train`` logs to ``metrics.jsonl``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np
from scipy.stats import pearsonr, spearmanr

from sentsim.data import PairDataset, ScoredPair
from sentsim.errors import ConfigError
from sentsim.evaluation.evaluate import score_embeddings
from sentsim.evaluation.evaluator_base import SentenceEvaluator, named_file, similarity_functions
from sentsim.inference.pairs import encode_pairs
from sentsim.inference.similarity import SimilarityFunction

logger = logging.getLogger(__name__)

__all__ = ["EmbeddingSimilarityEvaluator", "PairSetEvaluator", "SequentialEvaluator", "SimilarityFunction"]


class EmbeddingSimilarityEvaluator(SentenceEvaluator):
    """Pearson and Spearman of gold scores against embedding similarities (sentence-transformers' semantics).

    Returns ``{name}_pearson_<fn>`` / ``{name}_spearman_<fn>`` (unprefixed without a name) in 0–1 for each
    similarity function (by default the model's ``similarity_fn_name``), plus ``*_max`` over several;
    ``primary_metric`` names the key to rank checkpoints by. With ``output_path`` and ``write_csv``,
    appends a row to ``similarity_evaluation[_{name}][_{precision}]_results.csv``.
    ``dtype`` (sentsim's extra) is the compute type of the encoder; ``precision`` quantises embeddings.
    """

    def __init__(self, sentences1: Sequence[str], sentences2: Sequence[str], scores: Sequence[float],
                 batch_size: int = 16, main_similarity: Any = None, similarity_fn_names: Sequence[str] | None = None,
                 name: str = "", show_progress_bar: bool | None = False, write_csv: bool = True,
                 precision: str | None = None, truncate_dim: int | None = None, *, dtype: str = "auto") -> None:
        if not len(sentences1) == len(sentences2) == len(scores):
            raise ValueError(f"sentences1, sentences2 and scores differ in length ({len(sentences1)}, "
                             f"{len(sentences2)}, {len(scores)})")
        super().__init__(name=name, batch_size=batch_size, show_progress_bar=show_progress_bar, write_csv=write_csv,
                         truncate_dim=truncate_dim, dtype=dtype,
                         csv_file=named_file("similarity_evaluation", name,
                                             (f"_{precision}" if precision else "") + "_results.csv"))
        self.sentences1, self.sentences2, self.scores = list(sentences1), list(sentences2), list(scores)
        self.similarity_fn_names, self.main_similarity = similarity_functions(similarity_fn_names, main_similarity)
        self.precision = precision

    @classmethod
    def from_input_examples(cls, examples: Sequence[Any], **options: Any) -> EmbeddingSimilarityEvaluator:
        return cls([e.texts[0] for e in examples], [e.texts[1] for e in examples], [e.label for e in examples],
                   **options)

    @property
    def csv_headers(self) -> list[str]:
        return ["epoch", "steps", *(f"{fn}_{m}" for fn in self.similarity_fn_names for m in ("pearson", "spearman"))]

    def __call__(self, model: Any, output_path: str | None = None, epoch: int = -1,
                 steps: int = -1) -> dict[str, float]:
        from sentsim.inference.similarity import PAIRWISE_FUNCTIONS

        embeddings1, embeddings2 = self._embed(model)
        if not self.similarity_fn_names:
            self.similarity_fn_names = [model.similarity_fn_name]
        metrics: dict[str, float] = {}
        for fn in self.similarity_fn_names:
            predicted = PAIRWISE_FUNCTIONS[fn](embeddings1, embeddings2).detach().cpu().numpy()
            metrics[f"pearson_{fn}"] = float(pearsonr(self.scores, predicted)[0])
            metrics[f"spearman_{fn}"] = float(spearmanr(self.scores, predicted)[0])
            logger.info("%s-Similarity:\tPearson: %.4f\tSpearman: %.4f", fn.capitalize(), metrics[f"pearson_{fn}"],
                        metrics[f"spearman_{fn}"])
        self.append_results_row(output_path, [epoch, steps, *(metrics[f"{m}_{fn}"] for fn in self.similarity_fn_names
                                                              for m in ("pearson", "spearman"))])
        if len(self.similarity_fn_names) > 1:
            metrics["pearson_max"] = max(metrics[f"pearson_{fn}"] for fn in self.similarity_fn_names)
            metrics["spearman_max"] = max(metrics[f"spearman_{fn}"] for fn in self.similarity_fn_names)
        if self.main_similarity:
            primary = f"spearman_{self.main_similarity}"
        else:
            primary = "spearman_max" if len(self.similarity_fn_names) > 1 else f"spearman_{self.similarity_fn_names[0]}"
        return self.prefixed(model, metrics, primary, epoch=epoch, steps=steps)

    def _embed(self, model: Any) -> tuple[np.ndarray, np.ndarray]:
        """Both sides' embeddings; int8/uint8 share one range (one encode), binary is unpacked to bits."""
        options = {"precision": self.precision or "float32", "normalize_embeddings": bool(self.precision)}
        if self.precision in ("int8", "uint8"):
            both = self.embed_inputs(model, [*self.sentences1, *self.sentences2], **options)
            first, second = both[: len(self.sentences1)], both[len(self.sentences1):]
        else:
            first, second = self.embed_inputs(model, self.sentences1, **options), \
                self.embed_inputs(model, self.sentences2, **options)
        if self.precision == "binary":
            first, second = first.astype(np.int16) + 128, second.astype(np.int16) + 128
        if self.precision in ("binary", "ubinary"):
            first = np.unpackbits(first.astype(np.uint8), axis=1)
            second = np.unpackbits(second.astype(np.uint8), axis=1)
        return first.astype(np.float32), second.astype(np.float32)


class PairSetEvaluator:
    """sentsim's dev scorer: metrics ×100 for all four similarities, and ``spearman_cosine_<genre>``."""

    primary_metric = "spearman_cosine"

    def __init__(self, dataset: PairDataset, *, batch_size: int = 64, dtype: str = "auto",
                 show_progress_bar: bool = False) -> None:
        self.dataset = dataset
        self.batch_size = batch_size
        self.dtype = dtype
        self.show_progress_bar = show_progress_bar
        #: (primary score, embeddings of side 1, of side 2) of the best-scoring call so far, so a run that
        #: ends on its best checkpoint can score dev again (with intervals) without encoding it again.
        self.best: tuple[float, np.ndarray, np.ndarray] | None = None

    @classmethod
    def from_lists(cls, sentences1: Sequence[str], sentences2: Sequence[str], scores: Sequence[float], *,
                   name: str = "evaluator", **options: Any) -> PairSetEvaluator:
        """Classic callers pass 0–1 labels or raw 0–5 scores; correlations ignore the scale, pairs do not."""
        values = [float(score) for score in scores]
        if not values or len(values) != len(sentences1) or len(values) != len(sentences2):
            raise ConfigError("the evaluator needs equally long, non-empty sentences1, sentences2 and scores")
        if min(values) < 0:
            raise ConfigError("evaluator scores must not be negative")
        span = max(max(values), 1.0)
        pairs = [ScoredPair(a, b, v / span) for a, b, v in zip(sentences1, sentences2, values, strict=True)]
        return cls(PairDataset(pairs=pairs, source=name), **options)

    def __call__(self, model: Any, output_path: str | None = None, epoch: int = -1,
                 steps: int = -1) -> dict[str, float]:
        embeddings = encode_pairs(model, self.dataset.sentences1, self.dataset.sentences2,
                                  batch_size=self.batch_size, dtype=self.dtype, show_progress=self.show_progress_bar)
        result = score_embeddings(self.dataset, *embeddings)
        if self.best is None or result.spearman_cosine > self.best[0]:  # as BestCheckpoint: strictly better
            self.best = (result.spearman_cosine, *embeddings)
        return {**result.metrics, **{f"spearman_cosine_{genre}": value for genre, value in result.per_genre.items()}}

    def embeddings_scoring(self, score: float | None) -> tuple[np.ndarray, np.ndarray] | None:
        """The dev embeddings of the best call so far if it scored ``score`` (the checkpoint a run kept), else None."""
        if self.best is None or score is None or self.best[0] != score:
            return None
        return self.best[1], self.best[2]


class SequentialEvaluator:
    """Several evaluators as one, as sentence-transformers' ``SequentialEvaluator``: each runs in turn on
    the model, their metrics are merged into one dict, and ``sequential_score`` (the primary metric, which
    ranks checkpoints) is ``main_score_function`` of their primary scores, by default the last one's.

    An evaluator returning a bare number (the 2.x style) is reported as ``evaluator_<position>``. The
    Trainer wraps a list of evaluators in one of these, as theirs does.
    """

    primary_metric = "sequential_score"

    def __init__(self, evaluators: Iterable[Any], main_score_function: Callable[[list[float]], float] | None = None
                 ) -> None:
        self.evaluators = list(evaluators)
        self.main_score_function = main_score_function or (lambda scores: scores[-1])

    def __call__(self, model: Any, output_path: str | None = None, epoch: int = -1,
                 steps: int = -1) -> dict[str, float]:
        results: dict[str, float] = {}
        scores: list[float] = []
        for position, evaluator in enumerate(self.evaluators):
            evaluation = evaluator(model, output_path, epoch, steps)
            if not isinstance(evaluation, dict):
                scores.append(evaluation)
                evaluation = {f"evaluator_{position}": evaluation}
            elif not evaluation:
                raise ConfigError(f"evaluator {position} ({type(evaluator).__name__}) returned no metrics")
            else:
                primary = getattr(evaluator, "primary_metric", None)
                scores.append(evaluation[primary] if primary in evaluation else next(iter(evaluation.values())))
            results.update(evaluation)
        results[self.primary_metric] = self.main_score_function(scores) if scores else 0.0
        return results
