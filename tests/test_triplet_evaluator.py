"""TripletEvaluator: accuracy with margins, keys and CSV as sentence-transformers' own, without torch."""

from __future__ import annotations

import numpy as np
import pytest

ANCHORS = ["a person on a horse jumps", "children smiling at a camera", "a boy on a skateboard", "a dog in the park"]
POSITIVES = ["a person is on a horse", "children look at the camera", "the boy does a trick", "a dog is outside"]
NEGATIVES = ["a person orders an omelette", "the kids are frowning", "the boy skates on a sidewalk",
             "a cat sleeps indoors"]


class FixedModel:
    """Embeddings chosen by hand: each anchor's positive is nearer than its negative, by a known cosine."""

    similarity_fn_name = "cosine"

    def __init__(self) -> None:
        angle = {text: 0.0 for text in ANCHORS} | {text: 0.2 for text in POSITIVES} | {text: 0.9 for text in NEGATIVES}
        angle[NEGATIVES[3]] = 0.1  # the last triplet is wrong: its negative is nearer
        self.vectors = {text: np.array([np.cos(value), np.sin(value)]) for text, value in angle.items()}

    def encode(self, texts, **options):
        return np.stack([self.vectors[text] for text in texts])


def test_accuracy_counts_triplets_whose_positive_wins_by_the_margin():
    from sentsim.evaluation import TripletEvaluator

    model = FixedModel()
    evaluator = TripletEvaluator(ANCHORS, POSITIVES, NEGATIVES, name="all_nli_dev")
    metrics = evaluator(model)
    assert evaluator.primary_metric == "all_nli_dev_cosine_accuracy"
    assert metrics == {"all_nli_dev_cosine_accuracy": 0.75}
    margin = np.cos(0.2) - np.cos(0.9)  # every winning triplet wins by this (to float32 embeddings)
    assert TripletEvaluator(ANCHORS, POSITIVES, NEGATIVES, margin=margin - 1e-6)(model)["cosine_accuracy"] == 0.75
    assert TripletEvaluator(ANCHORS, POSITIVES, NEGATIVES, margin={"cosine": margin + 1e-6})(model) == {
        "cosine_accuracy": 0.0}
    several = TripletEvaluator(ANCHORS, POSITIVES, NEGATIVES, similarity_fn_names=["cosine", "euclidean"])
    assert several(model) == {"cosine_accuracy": 0.75, "euclidean_accuracy": 0.75, "max_accuracy": 0.75}
    assert several.primary_metric == "max_accuracy"
    main = TripletEvaluator(ANCHORS, POSITIVES, NEGATIVES, main_similarity_function="dot")
    assert list(main(model)) == ["dot_accuracy"] and main.primary_metric == "dot_accuracy"


def test_the_evaluator_equals_sentence_transformers_on_a_sentsim_model(tiny_transformer_dir, tmp_path):
    from sentsim import SentenceTransformer
    from sentsim.evaluation import TripletEvaluator

    model = SentenceTransformer(str(tiny_transformer_dir))
    for method in ("encode", "encode_query", "encode_document"):  # fp32 both ways, whoever calls which
        original = getattr(model, method)
        setattr(model, method, lambda *args, _original=original, **options: _original(
            *args, **{**options, "dtype": "fp32"}))
    names = ["cosine", "dot", "manhattan", "euclidean"]
    ours = TripletEvaluator(ANCHORS, POSITIVES, NEGATIVES, name="dev", similarity_fn_names=names, margin=0.01)
    results = ours(model, output_path=str(tmp_path / "ours"), epoch=2, steps=7)
    evaluation = pytest.importorskip("sentence_transformers.evaluation")
    theirs = evaluation.TripletEvaluator(ANCHORS, POSITIVES, NEGATIVES, name="dev", similarity_fn_names=names,
                                         margin=0.01)
    assert results == theirs(model, output_path=str(tmp_path / "theirs"), epoch=2, steps=7)
    assert ours.primary_metric == theirs.primary_metric
    assert (tmp_path / "ours" / ours.csv_file).read_text() == (tmp_path / "theirs" / theirs.csv_file).read_text()


def test_mistakes_are_refused_by_name():
    from sentsim.errors import ConfigError
    from sentsim.evaluation import TripletEvaluator

    with pytest.raises(ConfigError, match=r"differ in length \(4, 4, 3\)"):
        TripletEvaluator(ANCHORS, POSITIVES, NEGATIVES[:3])
    with pytest.raises(ConfigError, match=r"margin names \['cos'\]"):
        TripletEvaluator(ANCHORS, POSITIVES, NEGATIVES, margin={"cos": 0.1})
    with pytest.raises(ValueError, match="similarity_fn_name must be one of cosine, dot, euclidean, manhattan, not"):
        TripletEvaluator(ANCHORS, POSITIVES, NEGATIVES, similarity_fn_names=["jaccard"])
