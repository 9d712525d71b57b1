"""Evaluators of multilingual distillation (a student taught to place translations where a teacher puts the source).

sentence-transformers' ``MSEEvaluator`` (how far the student's target embeddings are from the teacher's
source embeddings) and ``TranslationEvaluator`` (how often a sentence's nearest neighbour, by cosine,
among the other side is its own translation), with their constructors, keys, primary metrics and CSV.
numpy only.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from sentsim.errors import ConfigError
from sentsim.evaluation.evaluator_base import SentenceEvaluator, named_file
from sentsim.inference.similarity_any import similarity_matrix

__all__ = ["MSEEvaluator", "TranslationEvaluator"]


class MSEEvaluator(SentenceEvaluator):
    """Mean squared error ×100 between the teacher's embeddings of ``source_sentences`` (computed once,
    here) and the evaluated model's of ``target_sentences``; reported as ``negative_mse`` (the primary
    metric), so that higher is better, and written to the CSV as ``MSE``."""

    def __init__(self, source_sentences: Sequence[str], target_sentences: Sequence[str], teacher_model: Any = None,
                 show_progress_bar: bool = False, batch_size: int = 32, name: str = "", write_csv: bool = True,
                 truncate_dim: int | None = None, *, dtype: str = "auto") -> None:
        if len(source_sentences) != len(target_sentences):
            raise ConfigError(f"source_sentences ({len(source_sentences)}) and target_sentences "
                              f"({len(target_sentences)}) must have the same length.")
        if teacher_model is None:
            raise ConfigError("MSEEvaluator needs the teacher_model that embeds the source sentences")
        super().__init__(name=name, batch_size=batch_size, show_progress_bar=show_progress_bar, write_csv=write_csv,
                         truncate_dim=truncate_dim, dtype=dtype, csv_file=f"mse_evaluation_{name}_results.csv")
        self.target_sentences = list(target_sentences)
        self.csv_headers = ["epoch", "steps", "MSE"]
        self.primary_metric = "negative_mse"
        self.source_embeddings = np.asarray(self.embed_inputs(teacher_model, source_sentences), dtype=np.float32)

    def __call__(self, model: Any, output_path: str | None = None, epoch: int = -1,
                 steps: int = -1) -> dict[str, float]:
        targets = np.asarray(self.embed_inputs(model, self.target_sentences), dtype=np.float32)
        if targets.shape != self.source_embeddings.shape:
            raise ConfigError(f"the model's embeddings {targets.shape} do not match the teacher's "
                              f"{self.source_embeddings.shape}")
        mse = float(np.mean((self.source_embeddings - targets) ** 2) * 100)
        self.append_results_row(output_path, [epoch, steps, mse])
        return self.prefixed(model, {"negative_mse": -mse}, "negative_mse", epoch=epoch, steps=steps)


class TranslationEvaluator(SentenceEvaluator):
    """Share of source sentences whose most similar target (cosine) is their translation (a target equal
    to it counts too), and the same from targets to sources: ``src2trg_accuracy``, ``trg2src_accuracy``
    and their mean, ``mean_accuracy`` (the primary metric). ``print_wrong_matches`` prints each miss."""

    def __init__(self, source_sentences: Sequence[str], target_sentences: Sequence[str],
                 show_progress_bar: bool = False, batch_size: int = 16, name: str = "",
                 print_wrong_matches: bool = False, write_csv: bool = True, truncate_dim: int | None = None, *,
                 dtype: str = "auto") -> None:
        if len(source_sentences) != len(target_sentences):
            raise ConfigError(f"source_sentences ({len(source_sentences)}) and target_sentences "
                              f"({len(target_sentences)}) must have the same length.")
        super().__init__(name=name, batch_size=batch_size, show_progress_bar=show_progress_bar, write_csv=write_csv,
                         truncate_dim=truncate_dim, dtype=dtype,
                         csv_file=named_file("translation_evaluation", name))
        self.source_sentences, self.target_sentences = list(source_sentences), list(target_sentences)
        self.print_wrong_matches = print_wrong_matches
        self.csv_headers = ["epoch", "steps", "src2trg", "trg2src"]
        self.primary_metric = "mean_accuracy"

    def __call__(self, model: Any, output_path: str | None = None, epoch: int = -1,
                 steps: int = -1) -> dict[str, float]:
        cosines = similarity_matrix(self.embed_inputs(model, self.source_sentences),
                                    self.embed_inputs(model, self.target_sentences), "cosine")
        src2trg = self._accuracy(cosines, self.target_sentences, self.source_sentences, report=self.print_wrong_matches)
        trg2src = self._accuracy(cosines.T, self.source_sentences, self.target_sentences, report=False)
        self.append_results_row(output_path, [epoch, steps, src2trg, trg2src])
        metrics = {"src2trg_accuracy": src2trg, "trg2src_accuracy": trg2src, "mean_accuracy": (src2trg + trg2src) / 2}
        return self.prefixed(model, metrics, "mean_accuracy", epoch=epoch, steps=steps)

    @staticmethod
    def _accuracy(cosines: np.ndarray, targets: list[str], sources: list[str], *, report: bool) -> float:
        """Rows whose best column holds the row's own text (or an equal one), over all rows."""
        best = np.argmax(cosines, axis=1)
        right = np.array([targets[row] == targets[column] for row, column in enumerate(best)])
        if report:
            for row in np.flatnonzero(~right):
                print(f"Incorrect: source {row} is most similar to target {best[row]} instead of target {row}\n"
                      f"Source     : {sources[row]}\nPred Target: {targets[best[row]]} "
                      f"(Score: {cosines[row, best[row]]:.4f})\nTrue Target: {targets[row]} "
                      f"(Score: {cosines[row, row]:.4f})")
        return float(right.mean()) if len(right) else 0.0
