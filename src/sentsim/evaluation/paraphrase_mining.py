"""How well mining a collection for its most similar pairs finds its known duplicates (Quora-style sets).

sentence-transformers' ``ParaphraseMiningEvaluator``: every sentence's ``top_k`` neighbours are mined
(``util.paraphrase_mining``), the pairs ranked by similarity, and the known duplicate pairs scored as
the positives: the average precision over all of them (a duplicate never mined counts as missed) and
the best F1 of any cut-off, with its precision, recall and threshold. Pairs of equal similarity are
taken together. With the same mining, the figures are theirs.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from sentsim.evaluation.evaluator_base import SentenceEvaluator, named_file

__all__ = ["ParaphraseMiningEvaluator", "mining_metrics"]


def mining_metrics(ranked: Iterable[tuple[float, bool]], total_duplicates: int) -> dict[str, float]:
    """Average precision, best F1 (with its precision, recall and threshold) of pairs ranked best first,
    each ``(similarity, is a known duplicate)``, out of ``total_duplicates`` known ones.

    Ties are cut only after their last pair; the threshold is halfway to the next similarity.
    """
    ranked = list(ranked)
    taken = found = found_before = 0
    average_precision = best_f1 = best_precision = best_recall = threshold = 0.0
    for index, (score, duplicate) in enumerate(ranked):
        taken += 1
        found += bool(duplicate)
        if index + 1 < len(ranked) and ranked[index + 1][0] == score:
            continue
        if found > found_before:
            precision = found / taken
            recall = found / total_duplicates if total_duplicates else 0.0
            f1 = 2 * precision * recall / (precision + recall)
            average_precision += precision * (found - found_before)
            if f1 > best_f1:
                best_f1, best_precision, best_recall = f1, precision, recall
                threshold = (score + ranked[min(index + 1, len(ranked) - 1)][0]) / 2
        found_before = found
    return {"average_precision": average_precision / total_duplicates if total_duplicates else 0.0,
            "f1": best_f1, "precision": best_precision, "recall": best_recall, "threshold": threshold}


class ParaphraseMiningEvaluator(SentenceEvaluator):
    """sentence-transformers' evaluator of paraphrase mining, with their constructor, keys and CSV.

    ``sentences_map`` maps ids to texts; the known duplicates come as ``duplicates_list`` (id pairs)
    and/or ``duplicates_dict`` (``{id: {id: True}}``), ids outside ``sentences_map`` ignored;
    ``add_transitive_closure`` also counts as duplicates every two ids joined by a chain of them.
    Returns ``{name}_average_precision`` (the primary metric), ``_f1``, ``_precision``, ``_recall`` and
    ``_threshold``. ``dtype`` (sentsim's extra) is the encoder's compute type.
    """

    def __init__(self, sentences_map: Mapping[str, str], duplicates_list: Iterable[tuple[str, str]] | None = None,
                 duplicates_dict: Mapping[str, Mapping[str, bool]] | None = None, add_transitive_closure: bool = False,
                 query_chunk_size: int = 5000, corpus_chunk_size: int = 100000, max_pairs: int = 500000,
                 top_k: int = 100, show_progress_bar: bool = False, batch_size: int = 16, name: str = "",
                 write_csv: bool = True, truncate_dim: int | None = None, *, dtype: str = "auto") -> None:
        super().__init__(name=name, batch_size=batch_size, show_progress_bar=show_progress_bar, write_csv=write_csv,
                         truncate_dim=truncate_dim, dtype=dtype,
                         csv_file=named_file("paraphrase_mining_evaluation", name))
        self.ids, self.sentences = list(sentences_map), list(sentences_map.values())
        self.query_chunk_size, self.corpus_chunk_size = query_chunk_size, corpus_chunk_size
        self.max_pairs, self.top_k = max_pairs, top_k
        self.add_closure = add_transitive_closure
        pairs = {frozenset((a, b)) for a, row in (duplicates_dict or {}).items() for b, alike in row.items() if alike}
        pairs |= {frozenset((a, b)) for a, b in duplicates_list or ()}
        known = set(sentences_map)
        pairs = {pair for pair in pairs if pair <= known and len(pair) == 2}
        self.duplicates = _closure(pairs) if add_transitive_closure else pairs
        self.total_num_duplicates = len(self.duplicates)
        self.csv_headers = ["epoch", "steps", "precision", "recall", "f1", "threshold", "average_precision"]
        self.primary_metric = "average_precision"

    def __call__(self, model: Any, output_path: str | None = None, epoch: int = -1,
                 steps: int = -1) -> dict[str, float]:
        from sentsim.inference.search import paraphrase_mining_embeddings

        embeddings = self.embed_inputs(model, self.sentences, convert_to_numpy=False, convert_to_tensor=True)
        mined = paraphrase_mining_embeddings(embeddings, query_chunk_size=self.query_chunk_size,
                                             corpus_chunk_size=self.corpus_chunk_size, max_pairs=self.max_pairs,
                                             top_k=self.top_k)
        metrics = mining_metrics(((score, frozenset((self.ids[i], self.ids[j])) in self.duplicates)
                                  for score, i, j in mined), self.total_num_duplicates)
        self.append_results_row(output_path, [epoch, steps, *(metrics[key] for key in self.csv_headers[2:])])
        return self.prefixed(model, metrics, "average_precision", epoch=epoch, steps=steps)

    def get_config_dict(self) -> dict[str, Any]:
        return {"add_transitive_closure": self.add_closure, "max_pairs": self.max_pairs, "top_k": self.top_k}


def _closure(pairs: set[frozenset[str]]) -> set[frozenset[str]]:
    """Every two ids joined by a chain of duplicate pairs (the transitive closure), as pairs."""
    parent: dict[str, str] = {}

    def root(node: str) -> str:
        while parent.setdefault(node, node) != node:
            parent[node] = parent[parent[node]]
            node = parent[node]
        return node

    for a, b in (tuple(pair) for pair in pairs):
        parent[root(a)] = root(b)
    groups: dict[str, list[str]] = {}
    for node in list(parent):
        groups.setdefault(root(node), []).append(node)
    return {frozenset((a, b)) for members in groups.values() for i, a in enumerate(members) for b in members[i + 1:]}
