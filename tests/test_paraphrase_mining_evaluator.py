"""ParaphraseMiningEvaluator: average precision and best F1 of mined pairs, as sentence-transformers' own."""

from __future__ import annotations

import numpy as np
import pytest

SENTENCES = {"a": "how do i learn python", "b": "what is the best way to learn python", "c": "how to cook rice",
             "d": "best way to cook rice", "e": "the weather in paris", "f": "is it raining in paris",
             "g": "how old is the moon", "h": "python tutorial for beginners"}
DUPLICATES = [("a", "b"), ("c", "d"), ("b", "h"), ("e", "zz")]  # "zz" is not a sentence: ignored


def test_mining_metrics_take_ties_together_and_count_unmined_duplicates_as_missed():
    from sentsim.evaluation.paraphrase_mining import mining_metrics

    ranked = [(0.9, True), (0.8, False), (0.8, True), (0.5, True), (0.1, False)]
    metrics = mining_metrics(ranked, total_duplicates=4)  # one duplicate was never mined
    # cut-offs after 0.9 (1 of 1), after the tie at 0.8 (2 of 3), after 0.5 (3 of 4)
    assert metrics["average_precision"] == pytest.approx((1.0 * 1 + 2 / 3 * 1 + 3 / 4 * 1) / 4)
    f1s = [2 * p * r / (p + r) for p, r in ((1.0, 0.25), (2 / 3, 0.5), (0.75, 0.75))]
    assert metrics["f1"] == pytest.approx(max(f1s)) and metrics["threshold"] == pytest.approx((0.5 + 0.1) / 2)
    assert (metrics["precision"], metrics["recall"]) == pytest.approx((0.75, 0.75))
    assert mining_metrics([], total_duplicates=0) == {"average_precision": 0.0, "f1": 0.0, "precision": 0.0,
                                                      "recall": 0.0, "threshold": 0.0}


def test_transitive_closure_joins_chains_of_duplicates():
    from sentsim.evaluation import ParaphraseMiningEvaluator

    plain = ParaphraseMiningEvaluator(SENTENCES, duplicates_list=DUPLICATES)
    closed = ParaphraseMiningEvaluator(SENTENCES, duplicates_list=DUPLICATES, add_transitive_closure=True)
    assert plain.total_num_duplicates == 3  # a-b, c-d, b-h
    assert closed.total_num_duplicates == 4 and frozenset(("a", "h")) in closed.duplicates
    from_dict = ParaphraseMiningEvaluator(SENTENCES, duplicates_dict={"a": {"b": True, "c": False}})
    assert from_dict.duplicates == {frozenset(("a", "b"))}


@pytest.mark.parametrize("closure", [False, True])
def test_the_evaluator_equals_sentence_transformers_on_a_sentsim_model(tiny_transformer_dir, tmp_path, closure):
    from sentsim import SentenceTransformer
    from sentsim.evaluation import ParaphraseMiningEvaluator

    model = SentenceTransformer(str(tiny_transformer_dir))
    encode = model.encode
    model.encode = lambda *args, **options: encode(*args, **{**options, "dtype": "fp32"})
    options = {"duplicates_list": DUPLICATES, "add_transitive_closure": closure, "top_k": 3, "name": "quora"}
    ours = ParaphraseMiningEvaluator(SENTENCES, **options)
    results = ours(model, output_path=str(tmp_path / "ours"), epoch=0, steps=3)
    evaluation = pytest.importorskip("sentence_transformers.evaluation")
    theirs = evaluation.ParaphraseMiningEvaluator(SENTENCES, **options)
    expected = theirs(model, output_path=str(tmp_path / "theirs"), epoch=0, steps=3)
    assert list(results) == list(expected) and ours.primary_metric == theirs.primary_metric
    assert expected["quora_average_precision"] > 0  # some duplicates were mined: the comparison is not empty
    assert results == pytest.approx(expected, abs=1e-6)
    rows = [np.array(path.read_text().splitlines()[1].split(","), dtype=float)
            for path in (tmp_path / "ours" / ours.csv_file, tmp_path / "theirs" / theirs.csv_file)]
    assert np.allclose(*rows, atol=1e-6)
