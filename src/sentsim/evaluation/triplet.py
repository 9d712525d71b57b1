"""How often an anchor is nearer its positive than its negative: sentence-transformers' ``TripletEvaluator``.

NLI-style (anchor, entailed, contradicting) triplets are the usual development set of
in-batch-negative training; the accuracy is the share of triplets whose positive is more similar to the
anchor than the negative is, by more than ``margin``. Similarities are computed in float64 with numpy,
so this runs without torch; distances count as negated similarities, as in sentence-transformers.
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

_FUNCTIONS = ("cosine", "dot", "manhattan", "euclidean")

__all__ = ["TripletEvaluator"]


class TripletEvaluator(SentenceEvaluator):
    """Accuracy of (anchor, positive, negative) triplets, with sentence-transformers' constructor and keys.

    Returns ``{name}_{fn}_accuracy`` for each similarity function (by default the model's
    ``similarity_fn_name``), plus ``{name}_max_accuracy`` over several; ``primary_metric`` is the main
    function's accuracy (``main_similarity_function``), else the only one, else the maximum. ``margin``
    is one number or one per function name (missing ones 0). Anchors are embedded with
    ``encode_query`` and the other texts with ``encode_document`` where the model has them (its prompts).
    With ``output_path`` and ``write_csv``, appends a row to ``triplet_evaluation[_{name}]_results.csv``.
    ``dtype`` (sentsim's extra) is the encoder's compute type.
    """

    def __init__(self, anchors: Sequence[str], positives: Sequence[str], negatives: Sequence[str],
                 main_similarity_function: Any = None, margin: float | dict[str, float] | None = None,
                 name: str = "", batch_size: int = 16, show_progress_bar: bool | None = False, write_csv: bool = True,
                 truncate_dim: int | None = None, similarity_fn_names: Sequence[str] | None = None,
                 main_distance_function: Any = "deprecated", *, dtype: str = "auto") -> None:
        if not len(anchors) == len(positives) == len(negatives):
            raise ConfigError(f"anchors, positives and negatives differ in length ({len(anchors)}, "
                              f"{len(positives)}, {len(negatives)})")
        if main_distance_function != "deprecated" and main_similarity_function is None:
            logger.warning("main_distance_function is deprecated: use main_similarity_function")
            main_similarity_function = main_distance_function
        super().__init__(name=name, batch_size=batch_size, show_progress_bar=show_progress_bar, write_csv=write_csv,
                         truncate_dim=truncate_dim, dtype=dtype,
                         csv_file=named_file("triplet_evaluation", name))
        self.anchors, self.positives, self.negatives = list(anchors), list(positives), list(negatives)
        self.similarity_fn_names, self.main_similarity_function = similarity_functions(similarity_fn_names,
                                                                                       main_similarity_function)
        self.margin = self._margins(margin)

    @staticmethod
    def _margins(margin: float | dict[str, float] | None) -> dict[str, float]:
        if margin is None:
            return dict.fromkeys(_FUNCTIONS, 0)
        if isinstance(margin, bool) or not isinstance(margin, int | float | dict):
            raise ConfigError(f"margin must be a number or a dict of similarity function → number, not {margin!r}")
        if isinstance(margin, dict):
            unknown = sorted(set(margin) - set(_FUNCTIONS))
            if unknown:
                raise ConfigError(f"margin names {unknown}, which are not among {', '.join(_FUNCTIONS)}")
            return {**dict.fromkeys(_FUNCTIONS, 0), **margin}
        return dict.fromkeys(_FUNCTIONS, margin)

    @classmethod
    def from_input_examples(cls, examples: Sequence[Any], **options: Any) -> TripletEvaluator:
        return cls([e.texts[0] for e in examples], [e.texts[1] for e in examples], [e.texts[2] for e in examples],
                   **options)

    @property
    def csv_headers(self) -> list[str]:
        return ["epoch", "steps", *(f"accuracy_{fn}" for fn in self.similarity_fn_names)]

    def __call__(self, model: Any, output_path: str | None = None, epoch: int = -1,
                 steps: int = -1) -> dict[str, float]:
        anchors, positives, negatives = (np.asarray(self.embed_inputs(model, texts, side=side), dtype=np.float32)
                                         for texts, side in ((self.anchors, "query"), (self.positives, "document"),
                                                             (self.negatives, "document")))
        if not self.similarity_fn_names:
            self.similarity_fn_names, _ = similarity_functions([self.model_similarity_fn_name(model)])
        to_positive, to_negative = pairwise_similarities(anchors, positives), pairwise_similarities(anchors, negatives)
        metrics = {f"{fn}_accuracy": float(np.mean(to_positive[fn] > to_negative[fn] + self.margin[fn]))
                   for fn in self.similarity_fn_names}
        for key, value in metrics.items():
            logger.info("%s: %.2f%%", key, 100 * value)
        self.append_results_row(output_path, [epoch, steps, *metrics.values()])
        if len(metrics) > 1:
            metrics["max_accuracy"] = max(metrics.values())
        if self.main_similarity_function:
            primary = f"{self.main_similarity_function}_accuracy"
        else:
            primary = "max_accuracy" if len(self.similarity_fn_names) > 1 else f"{self.similarity_fn_names[0]}_accuracy"
        return self.prefixed(model, metrics, primary, epoch=epoch, steps=steps)
