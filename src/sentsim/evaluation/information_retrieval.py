"""Retrieval quality: for each query, rank the corpus by similarity and score where its relevant documents land.

sentence-transformers' ``InformationRetrievalEvaluator``, with their constructor, keys, primary metric,
CSV and predictions file: accuracy@k, precision@k, recall@k, MRR@k, NDCG@k (binary relevance) and
MAP@k, averaged over the queries that have relevant documents. The ranking is by score, ties broken
by corpus id, as theirs is, so the figures do not depend on how the corpus is chunked. Scores come
from the model's similarity function in numpy (``similarity_any.similarity_matrix``), or from given
``score_functions``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from sentsim.errors import ConfigError
from sentsim.evaluation.evaluator_base import SentenceEvaluator, named_file, similarity_functions
from sentsim.inference.similarity_any import similarity_matrix

__all__ = ["InformationRetrievalEvaluator", "ranking_metrics"]

#: Reported per score function, in sentence-transformers' key order.
_METRICS = ("accuracy", "precision", "recall", "ndcg", "mrr", "map")


def _top(scores: np.ndarray, keys: np.ndarray, count: int) -> np.ndarray:
    """Per row, the column indices of the ``count`` best scores, ties broken by the smaller key (``keys``:
    one per column, or one per cell)."""
    count = min(count, scores.shape[1])
    keys = np.broadcast_to(keys, scores.shape)
    rows = []
    for row, row_keys in zip(scores, keys, strict=True):
        if count < row.size:  # only candidates down to the count-th score (and its ties) need sorting
            cut = np.partition(row, row.size - count)[row.size - count]
            candidates = np.flatnonzero(row >= cut)
        else:
            candidates = np.arange(row.size)
        rows.append(candidates[np.lexsort((row_keys[candidates], -row[candidates]))][:count])
    return np.array(rows, dtype=np.int64).reshape(len(rows), count)


def ranking_metrics(ranked: Sequence[Sequence[str]], relevant: Sequence[set[str]], *,
                    ks: Mapping[str, Sequence[int]]) -> dict[str, dict[int, float]]:
    """Averages over queries of accuracy@k, precision@k, recall@k, NDCG@k, MRR@k and MAP@k, from each
    query's ranked corpus ids and its set of relevant ids; ``ks`` names the cut-offs per metric."""
    totals: dict[str, dict[int, float]] = {metric: dict.fromkeys(ks[metric], 0.0) for metric in _METRICS}
    for hits, wanted in zip(ranked, relevant, strict=True):
        found = np.array([hit in wanted for hit in hits], dtype=float)
        positions = np.flatnonzero(found)
        for k in ks["accuracy"]:
            totals["accuracy"][k] += float(found[:k].any())
        for k in ks["precision"]:
            totals["precision"][k] += found[:k].sum() / k
            totals["recall"][k] += found[:k].sum() / len(wanted)
        for k in ks["mrr"]:
            first = positions[positions < k]
            totals["mrr"][k] += 1.0 / (first[0] + 1) if first.size else 0.0
        for k in ks["ndcg"]:
            discounts = 1 / np.log2(np.arange(2, k + 2))
            ideal = discounts[:min(len(wanted), k)].sum()
            totals["ndcg"][k] += float((found[:k] * discounts[:len(found[:k])]).sum() / ideal)
        for k in ks["map"]:
            within = positions[positions < k]
            precisions = np.arange(1, within.size + 1) / (within + 1)
            totals["map"][k] += float(precisions.sum() / min(k, len(wanted)))
    queries = len(ranked)
    return {metric: {k: value / queries for k, value in values.items()} for metric, values in totals.items()}


class InformationRetrievalEvaluator(SentenceEvaluator):
    """sentence-transformers' retrieval evaluator on a sentsim model (or any with ``encode``).

    ``queries`` and ``corpus`` map ids to texts, ``relevant_docs`` maps a query id to its relevant corpus
    ids; queries without any are left out. Returns ``{name}_{fn}_{metric}@{k}``; ``primary_metric`` is
    NDCG at the largest k of the main score function, else of whichever scores best on the first call.
    Queries go through ``encode_query`` and documents through ``encode_document`` where the model has
    them (with the given prompts). ``write_predictions`` writes each query's ranked hits as JSON lines.
    """

    def __init__(self, queries: Mapping[str, str], corpus: Mapping[str, str], relevant_docs: Mapping[str, set[str]],
                 corpus_chunk_size: int = 50000, mrr_at_k: Sequence[int] = (10,), ndcg_at_k: Sequence[int] = (10,),
                 accuracy_at_k: Sequence[int] = (1, 3, 5, 10), precision_recall_at_k: Sequence[int] = (1, 3, 5, 10),
                 map_at_k: Sequence[int] = (100,), show_progress_bar: bool = False, batch_size: int = 32,
                 name: str = "", write_csv: bool = True, truncate_dim: int | None = None,
                 score_functions: Mapping[str, Callable[[Any, Any], Any]] | None = None,
                 main_score_function: Any = None, query_prompt: str | None = None,
                 query_prompt_name: str | None = None, corpus_prompt: str | None = None,
                 corpus_prompt_name: str | None = None, write_predictions: bool = False, *,
                 dtype: str = "auto") -> None:
        super().__init__(name=name, batch_size=batch_size, show_progress_bar=show_progress_bar, write_csv=write_csv,
                         truncate_dim=truncate_dim, dtype=dtype,
                         csv_file=named_file("Information-Retrieval_evaluation", name))
        self.queries_ids = [qid for qid in queries if relevant_docs.get(qid)]
        if not self.queries_ids:
            raise ConfigError("no query has a relevant document in relevant_docs: there is nothing to evaluate")
        self.queries = [queries[qid] for qid in self.queries_ids]
        self.corpus_ids, self.corpus = list(corpus), list(corpus.values())
        self.relevant_docs = relevant_docs
        self.corpus_chunk_size = corpus_chunk_size
        self.ks = {"accuracy": list(accuracy_at_k), "precision": list(precision_recall_at_k),
                   "recall": list(precision_recall_at_k), "ndcg": list(ndcg_at_k), "mrr": list(mrr_at_k),
                   "map": list(map_at_k)}
        self.score_functions = dict(score_functions) if score_functions else None
        _, self.main_score_function = similarity_functions(None, main_score_function)
        self.prompts = {"query": (query_prompt, query_prompt_name), "document": (corpus_prompt, corpus_prompt_name)}
        self.write_predictions = write_predictions
        self.predictions_file = named_file("Information-Retrieval_evaluation", name, "_predictions.jsonl")

    def __call__(self, model: Any, output_path: str | None = None, epoch: int = -1,
                 steps: int = -1, *args: Any, **kwargs: Any) -> dict[str, float]:
        scores = self.compute_metrics(model, output_path=output_path)
        names = list(scores)
        self.append_results_row(output_path, [epoch, steps, *(value for fn in sorted(names) for value in
                                                              self._row(scores[fn]))],
                                headers=["epoch", "steps", *(header for fn in sorted(names)
                                                             for header in self._headers(fn))])
        if not self.primary_metric:
            top = max(self.ks["ndcg"])
            best = self.main_score_function or max(names, key=lambda fn: scores[fn]["ndcg"][top])
            self.primary_metric = f"{best}_ndcg@{top}"
        metrics = {f"{fn}_{metric}@{k}": value for fn in names for metric in _METRICS
                   for k, value in scores[fn][metric].items()}
        return self.prefixed(model, metrics, self.primary_metric, epoch=epoch, steps=steps)

    def compute_metrics(self, model: Any, output_path: str | None = None) -> dict[str, dict[str, dict[int, float]]]:
        """``{score function: {metric: {k: value}}}``, and the predictions file when asked for."""
        queries = self._embed(model, self.queries, "query")
        functions = self.score_functions or {self.model_similarity_fn_name(model): None}
        keys = np.argsort(np.argsort(np.array(self.corpus_ids, dtype=object), kind="stable"), kind="stable")
        wanted = max(max(values) for values in self.ks.values())
        documents = [self._embed(model, self.corpus[start:start + self.corpus_chunk_size], "document")
                     for start in range(0, len(self.corpus), self.corpus_chunk_size)]
        results = {}
        for fn, function in functions.items():
            # each chunk's best `wanted` (by score, then corpus id) hold the overall best: only they are kept,
            # so memory grows with the chunk, not with the corpus
            columns, scores = [], []
            for start, chunk in zip(range(0, len(self.corpus), self.corpus_chunk_size), documents, strict=True):
                chunk_scores = self._scores(fn, function, queries, chunk)
                best = _top(chunk_scores, keys[start:start + chunk_scores.shape[1]], wanted)
                columns.append(best + start)
                scores.append(np.take_along_axis(chunk_scores, best, axis=1))
            columns = np.concatenate(columns, axis=1) if columns else np.zeros((len(self.queries), 0), dtype=np.int64)
            scores = np.concatenate(scores, axis=1) if scores else np.zeros(columns.shape, dtype=np.float32)
            picked = _top(scores, keys[columns], wanted)
            order, hit_scores = np.take_along_axis(columns, picked, axis=1), np.take_along_axis(scores, picked, axis=1)
            ranked = [[self.corpus_ids[column] for column in row] for row in order]
            results[fn] = ranking_metrics(ranked, [set(self.relevant_docs[qid]) for qid in self.queries_ids],
                                          ks=self.ks)
            if self.write_predictions and output_path is not None:
                self._write_predictions(output_path, fn, ranked, hit_scores)
        return results

    def _embed(self, model: Any, texts: list[str], side: str) -> Any:
        prompt, prompt_name = self.prompts[side]
        custom = self.score_functions is not None  # their functions take what encode gives as tensors
        return self.embed_inputs(model, texts, side=side, prompt_name=prompt_name, prompt=prompt,
                                 convert_to_numpy=not custom, convert_to_tensor=custom)

    @staticmethod
    def _scores(fn: str, function: Callable[[Any, Any], Any] | None, queries: Any, documents: Any) -> np.ndarray:
        if function is None:
            return similarity_matrix(queries, documents, similarity_functions([fn])[0][0])
        result = function(queries, documents)
        return np.asarray(result.detach().cpu() if hasattr(result, "detach") else result, dtype=np.float32)

    def _headers(self, fn: str) -> list[str]:
        return [*(f"{fn}-Accuracy@{k}" for k in self.ks["accuracy"]),
                *(f"{fn}-{kind}@{k}" for k in self.ks["precision"] for kind in ("Precision", "Recall")),
                *(f"{fn}-MRR@{k}" for k in self.ks["mrr"]), *(f"{fn}-NDCG@{k}" for k in self.ks["ndcg"]),
                *(f"{fn}-MAP@{k}" for k in self.ks["map"])]

    def _row(self, scores: dict[str, dict[int, float]]) -> list[float]:
        return [*(scores["accuracy"][k] for k in self.ks["accuracy"]),
                *(scores[kind][k] for k in self.ks["precision"] for kind in ("precision", "recall")),
                *(scores["mrr"][k] for k in self.ks["mrr"]), *(scores["ndcg"][k] for k in self.ks["ndcg"]),
                *(scores["map"][k] for k in self.ks["map"])]

    def _write_predictions(self, output_path: str, fn: str, ranked: list[list[str]], scores: np.ndarray) -> None:
        os.makedirs(output_path, exist_ok=True)
        path = os.path.join(output_path, self.predictions_file.replace(".jsonl", f"_{fn}.jsonl"))
        with open(path, "w", encoding="utf-8") as handle:
            for qid, query, hits, values in zip(self.queries_ids, self.queries, ranked, scores, strict=True):
                results = [{"corpus_id": hit, "score": float(value)} for hit, value in zip(hits, values, strict=True)]
                handle.write(json.dumps({"query_id": qid, "query": query, "results": results}) + "\n")

    def get_config_dict(self) -> dict[str, Any]:
        return {"truncate_dim": self.truncate_dim} if self.truncate_dim is not None else {}
