"""How well one similarity threshold tells alike pairs from the rest: sentence-transformers' binary evaluator.

Paraphrase and duplicate sets (MRPC, Quora, PAWS) label each pair 1 (alike) or 0 rather than scoring
it. For each similarity function the evaluator reports the best accuracy and F1 any threshold reaches
(with those thresholds, and the F1 threshold's precision, recall and Matthews correlation) and the
average precision of ranking pairs by similarity, with sentence-transformers' keys, values and CSV.

Thresholds are searched between distinct similarities only (tied pairs fall on the same side) and
put halfway to the next one; distances (euclidean, manhattan) are reported as positive distances,
smaller meaning alike. Scores are computed in float64 and numpy only, so this runs without torch.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np

from sentsim.errors import ConfigError
from sentsim.evaluation.evaluator_base import SentenceEvaluator, named_file, similarity_functions
from sentsim.evaluation.metrics import pairwise_similarities

logger = logging.getLogger(__name__)

#: Per similarity function, in sentence-transformers' CSV column order (their returned keys order them
#: accuracy, accuracy_threshold, f1, f1_threshold, precision, recall, ap, mcc, as ``threshold_metrics``).
METRICS = ("accuracy", "accuracy_threshold", "f1", "precision", "recall", "f1_threshold", "ap", "mcc")
_DISTANCES = ("euclidean", "manhattan")

__all__ = ["METRICS", "BinaryClassificationEvaluator", "binary_report", "threshold_metrics"]


def threshold_metrics(scores: np.ndarray, labels: np.ndarray, *, greater_is_better: bool = True) -> dict[str, float]:
    """Accuracy, F1 (with precision and recall), their best thresholds, average precision and the
    Matthews correlation at the F1 threshold, for 0/1 ``labels`` predicted by ``scores``.

    A pair is predicted alike when its score is ≥ the threshold (≤ for distances, ``greater_is_better=False``).
    The accuracy search starts from "nothing is alike" (a threshold just past the most alike score) and
    moves only for a strictly better accuracy; F1 keeps 0 and threshold 0 when no positive is found.
    """
    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64)
    total, positives = len(labels), int(labels.sum())
    if total == 0:
        raise ConfigError("a binary classification evaluation needs at least one pair")
    order = np.argsort(-scores if greater_is_better else scores, kind="stable")
    ordered, hits = scores[order], np.cumsum(labels[order])
    ends = np.flatnonzero(np.append(ordered[1:] != ordered[:-1], True))  # last row of each run of equal scores
    taken, found = ends + 1, hits[ends]
    following = ordered[np.minimum(ends + 1, total - 1)]
    halfway = (ordered[ends] + following) / 2
    # the last run keeps its own score, and a midpoint rounded onto the next score must not take it in
    thresholds = np.where((ends == total - 1) | (halfway == following), ordered[ends], halfway)

    accuracy = (found + (total - positives) - (taken - found)) / total
    best = int(np.argmax(accuracy))
    if accuracy[best] > (total - positives) / total:
        best_accuracy, accuracy_threshold = float(accuracy[best]), float(thresholds[best])
    else:
        best_accuracy = (total - positives) / total
        accuracy_threshold = float(np.nextafter(ordered[0], np.inf if greater_is_better else -np.inf))

    precision = found / taken
    recall = found / positives if positives else np.zeros_like(precision)
    with np.errstate(invalid="ignore", divide="ignore"):
        f1 = np.where(found > 0, 2 * precision * recall / (precision + recall), 0.0)
    best = int(np.argmax(f1))
    f1_best, f1_precision, f1_recall, f1_threshold = (
        (float(f1[best]), float(precision[best]), float(recall[best]), float(thresholds[best]))
        if f1[best] > 0 else (0.0, 0.0, 0.0, 0.0))

    # average precision: precision at each distinct threshold, weighted by the recall it adds
    average_precision = float(np.sum(np.diff(recall, prepend=0.0) * precision)) if positives else 0.0
    predicted = scores >= f1_threshold if greater_is_better else scores <= f1_threshold
    return {"accuracy": best_accuracy, "accuracy_threshold": accuracy_threshold, "f1": f1_best,
            "f1_threshold": f1_threshold, "precision": f1_precision, "recall": f1_recall,
            "ap": average_precision, "mcc": _matthews(labels.astype(bool), predicted)}


def binary_report(gold: np.ndarray, similarities: dict[str, np.ndarray]) -> dict[str, dict[str, float]]:
    """For gold scores that take exactly two values (a paraphrase set's 0/1 labels on any scale): per
    similarity measure, :func:`threshold_metrics` with the higher value as "alike", the rates ×100 as
    sentsim reports correlations and the thresholds in the measure's own units (distances positive).
    Empty for any other gold scores, where a threshold classifier means nothing."""
    values = np.unique(np.asarray(gold, dtype=np.float64))
    if values.size != 2:
        return {}
    labels = (np.asarray(gold) == values[1]).astype(np.int64)
    report = {}
    for measure, similarity in similarities.items():
        found = _measure_metrics(measure, similarity, labels)
        report[measure] = {key: value if key.endswith("threshold") else 100 * value for key, value in found.items()}
    return report


def _measure_metrics(measure: str, similarity: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """:func:`threshold_metrics` for one similarity measure; a distance (euclidean, manhattan: given as
    negated similarities) is ranked as the positive distance, smaller meaning alike."""
    distance = measure in _DISTANCES
    return threshold_metrics(-similarity if distance else similarity, labels, greater_is_better=not distance)


def _matthews(truth: np.ndarray, predicted: np.ndarray) -> float:
    """Matthews correlation of two boolean vectors; 0 where a margin is empty (it is undefined there)."""
    tp, tn = int(np.sum(truth & predicted)), int(np.sum(~truth & ~predicted))
    fp, fn = int(np.sum(~truth & predicted)), int(np.sum(truth & ~predicted))
    denominator = float(tp + fp) * (tp + fn) * (tn + fp) * (tn + fn)
    return (tp * tn - fp * fn) / np.sqrt(denominator) if denominator else 0.0


class BinaryClassificationEvaluator(SentenceEvaluator):
    """sentence-transformers' ``BinaryClassificationEvaluator`` on a sentsim model (or any with ``encode``).

    Returns ``{name}_{fn}_{metric}`` for each similarity function (by default the model's
    ``similarity_fn_name``) and metric in :data:`METRICS`, plus ``{name}_max_{metric}`` over several;
    ``primary_metric`` is the average precision (``max_ap`` over several). With ``output_path`` and
    ``write_csv``, appends a row to ``binary_classification_evaluation[_{name}]_results.csv``. Each
    distinct text is embedded once. ``dtype`` (sentsim's extra) is the encoder's compute type.
    """

    def __init__(self, sentences1: Sequence[str], sentences2: Sequence[str], labels: Sequence[int], name: str = "",
                 batch_size: int = 32, show_progress_bar: bool | None = False, write_csv: bool = True,
                 truncate_dim: int | None = None, similarity_fn_names: Sequence[str] | None = None, *,
                 dtype: str = "auto") -> None:
        if not len(sentences1) == len(sentences2) == len(labels):
            raise ConfigError(f"sentences1, sentences2 and labels differ in length ({len(sentences1)}, "
                              f"{len(sentences2)}, {len(labels)})")
        wrong = next((index for index, label in enumerate(labels) if label not in (0, 1)), None)
        if wrong is not None:
            raise ConfigError(f"labels must be 0 or 1; label {wrong} is {labels[wrong]!r}")
        super().__init__(name=name, batch_size=batch_size, show_progress_bar=show_progress_bar, write_csv=write_csv,
                         truncate_dim=truncate_dim, dtype=dtype,
                         csv_file=named_file("binary_classification_evaluation", name))
        self.similarity_fn_names, _ = similarity_functions(similarity_fn_names)
        self.sentences1, self.sentences2 = list(sentences1), list(sentences2)
        self.labels = [int(label) for label in labels]

    @classmethod
    def from_input_examples(cls, examples: Sequence[Any], **options: Any) -> BinaryClassificationEvaluator:
        return cls([e.texts[0] for e in examples], [e.texts[1] for e in examples], [e.label for e in examples],
                   **options)

    @property
    def csv_headers(self) -> list[str]:
        return ["epoch", "steps", *(f"{fn}_{metric}" for fn in self.similarity_fn_names for metric in METRICS)]

    def __call__(self, model: Any, output_path: str | None = None, epoch: int = -1,
                 steps: int = -1) -> dict[str, float]:
        scores = self.compute_metrics(model)
        for fn, values in scores.items():
            logger.info("%s: accuracy %.2f (threshold %.4f), F1 %.2f (threshold %.4f), AP %.2f", fn,
                        100 * values["accuracy"], values["accuracy_threshold"], 100 * values["f1"],
                        values["f1_threshold"], 100 * values["ap"])
        self.append_results_row(output_path, [epoch, steps, *(scores[fn][metric] for fn in self.similarity_fn_names
                                                              for metric in METRICS)])
        metrics = {f"{fn}_{metric}": value for fn, values in scores.items() for metric, value in values.items()}
        if len(scores) > 1:
            metrics |= {f"max_{metric}": max(values[metric] for values in scores.values())
                        for metric in next(iter(scores.values()))}
        return self.prefixed(model, metrics, "max_ap" if len(scores) > 1 else f"{self.similarity_fn_names[0]}_ap",
                             epoch=epoch, steps=steps)

    def compute_metrics(self, model: Any) -> dict[str, dict[str, float]]:
        """``{fn: {metric: value}}`` for each similarity function asked for (their unprefixed figures); none
        asked for: the model's own, which the evaluator keeps from then on."""
        if not self.similarity_fn_names:
            self.similarity_fn_names, _ = similarity_functions([self.model_similarity_fn_name(model)])
        similarities = pairwise_similarities(*self._embed(model))
        labels = np.asarray(self.labels)
        return {fn: _measure_metrics(fn, similarities[fn], labels) for fn in self.similarity_fn_names}

    compute_metrices = compute_metrics  # sentence-transformers' older spelling

    @staticmethod
    def find_best_acc_and_threshold(scores: Any, labels: Any, high_score_more_similar: bool) -> tuple[float, float]:
        """(best accuracy, its threshold), as sentence-transformers' static method returns them."""
        found = threshold_metrics(np.asarray(scores), np.asarray(labels), greater_is_better=high_score_more_similar)
        return found["accuracy"], found["accuracy_threshold"]

    @staticmethod
    def find_best_f1_and_threshold(scores: Any, labels: Any,
                                   high_score_more_similar: bool) -> tuple[float, float, float, float]:
        """(best F1, its precision, its recall, its threshold), as sentence-transformers' static method."""
        found = threshold_metrics(np.asarray(scores), np.asarray(labels), greater_is_better=high_score_more_similar)
        return found["f1"], found["precision"], found["recall"], found["f1_threshold"]

    def _embed(self, model: Any) -> tuple[np.ndarray, np.ndarray]:
        texts = list(dict.fromkeys([*self.sentences1, *self.sentences2]))
        embeddings = self.embed_inputs(model, texts)
        row = {text: index for index, text in enumerate(texts)}
        embeddings = np.asarray(embeddings, dtype=np.float32)
        return (embeddings[[row[text] for text in self.sentences1]],
                embeddings[[row[text] for text in self.sentences2]])
