"""InformationRetrievalEvaluator: ranking metrics, tie order, keys, CSV and predictions as sentence-transformers'."""

from __future__ import annotations

import json

import numpy as np
import pytest

QUERIES = {"0": "What is a pokemon?", "1": "What is a vegetable?", "2": "What is a fruit?",
           "3": "What is a vehicle?", "4": "What is a car?", "5": "Who wrote this?"}
CORPUS = {"0": "A pokemon is a fictional creature", "1": "A vegetable is a plant", "2": "A fruit is a plant",
          "3": "A vehicle is a machine", "4": "A car is a vehicle"}
RELEVANT = {"0": {"0"}, "1": {"1"}, "2": {"2"}, "3": {"3", "4"}, "4": {"4"}}  # query 5 has none: left out
OPTIONS = {"name": "test", "accuracy_at_k": [1, 3], "precision_recall_at_k": [1, 3], "mrr_at_k": [3],
           "ndcg_at_k": [3], "map_at_k": [5]}


class KeywordModel:
    """One dimension per keyword (their test's stand-in): a text's embedding counts the keywords it holds."""

    similarity_fn_name = "cosine"
    KEYWORDS = ("pokemon", "car", "vehicle", "fruit", "vegetable")

    def encode(self, texts, **options):
        return np.array([[float(word in text) for word in self.KEYWORDS] for text in texts])


def test_the_metrics_of_their_keyword_example():
    from sentsim.evaluation import InformationRetrievalEvaluator

    evaluator = InformationRetrievalEvaluator(QUERIES, CORPUS, RELEVANT, **OPTIONS)
    results = evaluator(KeywordModel())
    # precision@3: 6 relevant hits of 15; recall@1: four queries find their one document, query 3 half of two
    assert results == pytest.approx({
        "test_cosine_accuracy@1": 1.0, "test_cosine_accuracy@3": 1.0, "test_cosine_precision@1": 1.0,
        "test_cosine_precision@3": 0.4, "test_cosine_recall@1": 0.9, "test_cosine_recall@3": 1.0,
        "test_cosine_ndcg@3": 1.0, "test_cosine_mrr@3": 1.0, "test_cosine_map@5": 1.0}, abs=1e-9)
    assert evaluator.primary_metric == "test_cosine_ndcg@3"


def test_ties_are_broken_by_corpus_id_whatever_the_chunking(tmp_path):
    from sentsim.evaluation import InformationRetrievalEvaluator

    corpus = {f"d{index:02d}": "same text" for index in range(12)} | {"a": "other"}
    relevant = {"q": {"d07"}}
    for chunk in (1, 5, 50):
        evaluator = InformationRetrievalEvaluator({"q": "the query"}, corpus, relevant, corpus_chunk_size=chunk,
                                                  write_predictions=True, **OPTIONS)
        evaluator(KeywordModelWithText(), output_path=str(tmp_path))
        line = json.loads((tmp_path / "Information-Retrieval_evaluation_test_predictions_cosine.jsonl").read_text())
        assert [hit["corpus_id"] for hit in line["results"]] == ["a", "d00", "d01", "d02", "d03"]


class KeywordModelWithText(KeywordModel):
    """Every "same text" document scores the same against the query; "other" scores higher (it is the query's)."""

    def encode(self, texts, **options):
        return np.array([[1.0, 0.0] if text == "same text" else [1.0, 0.5] for text in texts])


def test_the_evaluator_equals_sentence_transformers_on_a_sentsim_model(tiny_transformer_dir, tmp_path):
    from sentsim import SentenceTransformer
    from sentsim.evaluation import InformationRetrievalEvaluator

    model = SentenceTransformer(str(tiny_transformer_dir))
    for method in ("encode", "encode_query", "encode_document"):
        original = getattr(model, method)
        setattr(model, method, lambda *args, _original=original, **options: _original(
            *args, **{**options, "dtype": "fp32"}))
    ours = InformationRetrievalEvaluator(QUERIES, CORPUS, RELEVANT, corpus_chunk_size=2, **OPTIONS)
    results = ours(model, output_path=str(tmp_path / "ours"), epoch=1, steps=2)
    evaluation = pytest.importorskip("sentence_transformers.evaluation")
    theirs = evaluation.InformationRetrievalEvaluator(QUERIES, CORPUS, RELEVANT, corpus_chunk_size=2, **OPTIONS)
    expected = theirs(model, output_path=str(tmp_path / "theirs"), epoch=1, steps=2)
    assert list(results) == list(expected) and ours.primary_metric == theirs.primary_metric
    assert results == pytest.approx(expected, abs=1e-9)
    ours_csv, theirs_csv = ((tmp_path / side / ours.csv_file).read_text().splitlines() for side in ("ours", "theirs"))
    assert ours_csv[0] == theirs_csv[0]
    assert np.allclose(np.array(ours_csv[1].split(","), dtype=float), np.array(theirs_csv[1].split(","), dtype=float))


def test_queries_without_relevant_documents_leave_nothing_to_evaluate():
    from sentsim.errors import ConfigError
    from sentsim.evaluation import InformationRetrievalEvaluator

    with pytest.raises(ConfigError, match="no query has a relevant document"):
        InformationRetrievalEvaluator(QUERIES, CORPUS, {"5": set(), "9": {"0"}})

