"""How well a model orders each query's candidates, relevant ones first: sentence-transformers' ``RerankingEvaluator``.

Each sample is a query with its positive and negative documents (AskUbuntu, StackOverflowDupQuestions,
SciDocs-style sets). The documents are ranked by similarity to the query and scored with MAP, MRR@k and
NDCG@k, averaged over the samples that have both kinds. NDCG averages the gains of tied scores over the
positions they share and AP counts tied scores together, as scikit-learn's functions (which theirs
calls) do, so the figures are theirs; numpy only.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from sentsim.errors import ConfigError
from sentsim.evaluation.binary_classification import threshold_metrics
from sentsim.evaluation.evaluator_base import SentenceEvaluator, named_file
from sentsim.inference.similarity_any import similarity_matrix

__all__ = ["RerankingEvaluator", "ndcg_at"]


def ndcg_at(relevance: np.ndarray, scores: np.ndarray, k: int) -> float:
    """NDCG@k of one ranking by ``scores``; a run of tied scores shares its positions' discounts evenly."""
    relevance, scores = np.asarray(relevance, dtype=np.float64), np.asarray(scores, dtype=np.float64)
    discounts = np.where(np.arange(len(scores)) < k, 1 / np.log2(np.arange(len(scores)) + 2), 0.0)
    order = np.argsort(-scores, kind="stable")
    ordered, gains = scores[order], relevance[order]
    starts = np.flatnonzero(np.append(True, ordered[1:] != ordered[:-1]))
    ends = np.append(starts[1:], len(ordered))
    dcg = sum(gains[start:end].mean() * discounts[start:end].sum() for start, end in zip(starts, ends, strict=True))
    ideal = float(np.sum(np.sort(relevance)[::-1] * discounts))
    return float(dcg / ideal) if ideal > 0 else 0.0


class RerankingEvaluator(SentenceEvaluator):
    """sentence-transformers' reranking evaluator, with their constructor, keys, primary metric and CSV.

    ``samples``: a list (or a dict's values) of ``{"query": str, "positive": [str], "negative": [str]}``
    (one string is one document); samples without a positive or without a negative are left out.
    Returns ``{name}_map``, ``{name}_mrr@{at_k}`` and ``{name}_ndcg@{at_k}`` (the primary metric).
    ``similarity_fct`` (a function of query and document embeddings, as encode returns tensors) replaces
    the cosine. ``use_batched_encoding=False`` embeds each sample on its own, as theirs does.
    """

    def __init__(self, samples: Sequence[Mapping[str, Any]] | Mapping[Any, Mapping[str, Any]], at_k: int = 10,
                 name: str = "", write_csv: bool = True, similarity_fct: Callable[[Any, Any], Any] | None = None,
                 batch_size: int = 64, show_progress_bar: bool = False, use_batched_encoding: bool = True,
                 truncate_dim: int | None = None, mrr_at_k: int | None = None, *, dtype: str = "auto") -> None:
        self.at_k = mrr_at_k if mrr_at_k is not None else at_k
        super().__init__(name=name, batch_size=batch_size, show_progress_bar=show_progress_bar, write_csv=write_csv,
                         truncate_dim=truncate_dim, dtype=dtype,
                         csv_file=named_file("RerankingEvaluator", name, f"_results_@{self.at_k}.csv"))
        rows = list(samples.values()) if isinstance(samples, Mapping) else list(samples)
        try:
            rows = [{"query": row["query"], "positive": _documents(row["positive"]),
                     "negative": _documents(row["negative"])} for row in rows]
        except (KeyError, TypeError) as error:
            raise ConfigError(f"a reranking sample is a dict with query, positive and negative ({error!r})") from None
        self.samples = [row for row in rows if row["positive"] and row["negative"]]
        self.similarity_fct = similarity_fct
        self.use_batched_encoding = use_batched_encoding
        self.csv_headers = ["epoch", "steps", "MAP", f"MRR@{self.at_k}", f"NDCG@{self.at_k}"]
        self.primary_metric = f"ndcg@{self.at_k}"

    def __call__(self, model: Any, output_path: str | None = None, epoch: int = -1,
                 steps: int = -1) -> dict[str, float]:
        scores = self.compute_metrics(model)
        self.append_results_row(output_path, [epoch, steps, scores["map"], scores["mrr"], scores["ndcg"]])
        metrics = {"map": scores["map"], f"mrr@{self.at_k}": scores["mrr"], f"ndcg@{self.at_k}": scores["ndcg"]}
        return self.prefixed(model, metrics, f"ndcg@{self.at_k}", epoch=epoch, steps=steps)

    def compute_metrics(self, model: Any) -> dict[str, float]:
        """Mean MAP, MRR@k and NDCG@k over the samples."""
        if not self.samples:
            raise ConfigError("no reranking sample has both a positive and a negative document")
        documents = [row["positive"] + row["negative"] for row in self.samples]
        if self.use_batched_encoding:
            queries = self._embed(model, [row["query"] for row in self.samples], "query")
            flat = self._embed(model, [text for texts in documents for text in texts], "document")
            bounds = np.cumsum([0, *map(len, documents)])
            per_sample = [(queries[index:index + 1], flat[bounds[index]:bounds[index + 1]])
                          for index in range(len(documents))]
        else:
            per_sample = [(self._embed(model, [row["query"]], "query"), self._embed(model, texts, "document"))
                          for row, texts in zip(self.samples, documents, strict=True)]
        maps, mrrs, ndcgs = [], [], []
        for row, (query, candidates) in zip(self.samples, per_sample, strict=True):
            relevance = np.array([1] * len(row["positive"]) + [0] * len(row["negative"]))
            scores = self._scores(query, candidates)
            first = np.flatnonzero(relevance[np.argsort(-scores, kind="stable")[:self.at_k]])
            mrrs.append(1 / (first[0] + 1) if first.size else 0.0)
            ndcgs.append(ndcg_at(relevance, scores, self.at_k))
            maps.append(threshold_metrics(scores, relevance)["ap"])
        return {"map": float(np.mean(maps)), "mrr": float(np.mean(mrrs)), "ndcg": float(np.mean(ndcgs))}

    def _embed(self, model: Any, texts: list[str], side: str) -> Any:
        custom = self.similarity_fct is not None  # a similarity function takes what encode gives as tensors
        return self.embed_inputs(model, texts, side=side, convert_to_numpy=not custom, convert_to_tensor=custom)

    def _scores(self, query: Any, candidates: Any) -> np.ndarray:
        if self.similarity_fct is not None:
            result = self.similarity_fct(query, candidates)
            result = result.detach().cpu() if hasattr(result, "detach") else result
            return np.asarray(result, dtype=np.float64).reshape(-1)
        return similarity_matrix(query, candidates, "cosine")[0].astype(np.float64)


def _documents(value: Any) -> list[str]:
    return [value] if isinstance(value, str) else list(value)
