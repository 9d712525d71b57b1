"""BinaryClassificationEvaluator against sentence-transformers' own: thresholds, F1, AP and MCC, keys and CSV."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from tests.conftest import TRAIN_PAIRS

S1 = [a for a, _, _ in TRAIN_PAIRS]
S2 = [b for _, b, _ in TRAIN_PAIRS]
LABELS = [int(score >= 0.5) for _, _, score in TRAIN_PAIRS]


def _theirs(scores, labels, greater_is_better):
    """sentence-transformers' search and scikit-learn's AP and MCC, as their evaluator combines them."""
    evaluation = pytest.importorskip("sentence_transformers.evaluation")
    metrics = pytest.importorskip("sklearn.metrics")
    search = evaluation.BinaryClassificationEvaluator
    accuracy, accuracy_threshold = search.find_best_acc_and_threshold(scores, labels, greater_is_better)
    f1, precision, recall, f1_threshold = search.find_best_f1_and_threshold(scores, labels, greater_is_better)
    predicted = scores >= f1_threshold if greater_is_better else scores <= f1_threshold
    return {"accuracy": accuracy, "accuracy_threshold": accuracy_threshold, "f1": f1, "precision": precision,
            "recall": recall, "f1_threshold": f1_threshold,
            "ap": metrics.average_precision_score(labels, scores * (1 if greater_is_better else -1)),
            "mcc": metrics.matthews_corrcoef(labels, predicted)}


@pytest.mark.parametrize("greater_is_better", [True, False])
@pytest.mark.parametrize("seed", range(6))
def test_threshold_metrics_equal_sentence_transformers_and_scikit_learn(seed, greater_is_better):
    from sentsim.evaluation.binary_classification import threshold_metrics

    generator = np.random.default_rng(seed)
    rows = int(generator.integers(1, 60))
    # rounded scores make ties; some draws have one class only
    scores = np.round(generator.normal(size=rows), int(generator.integers(0, 3)))
    labels = (generator.random(rows) < [0.0, 0.3, 0.5, 0.7, 1.0, 0.5][seed]).astype(int)
    ours = threshold_metrics(scores, labels, greater_is_better=greater_is_better)
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scikit-learn's, on draws with one class only
        theirs = _theirs(scores, labels, greater_is_better)
    assert ours == pytest.approx(theirs, abs=1e-12)


def test_the_evaluator_gives_their_keys_and_figures_on_a_sentsim_model(tiny_transformer_dir, tmp_path):
    from sentsim import SentenceTransformer
    from sentsim.evaluation import BinaryClassificationEvaluator

    model = SentenceTransformer(str(tiny_transformer_dir))
    encode = model.encode
    model.encode = lambda *args, **options: encode(*args, **{**options, "dtype": "fp32"})
    names = ["cosine", "euclidean", "manhattan", "dot"]
    ours = BinaryClassificationEvaluator(S1, S2, LABELS, name="pairs", similarity_fn_names=names)
    results = ours(model, output_path=str(tmp_path / "ours"), epoch=1, steps=5)
    evaluation = pytest.importorskip("sentence_transformers.evaluation")
    theirs = evaluation.BinaryClassificationEvaluator(S1, S2, LABELS, name="pairs", similarity_fn_names=names)
    expected = theirs(model, output_path=str(tmp_path / "theirs"), epoch=1, steps=5)
    assert list(results) == list(expected) and ours.primary_metric == theirs.primary_metric == "pairs_max_ap"
    assert results == pytest.approx(expected, rel=1e-5, abs=1e-6)  # their similarities are float32
    ours_csv = (tmp_path / "ours" / ours.csv_file).read_text().splitlines()
    theirs_csv = (tmp_path / "theirs" / theirs.csv_file).read_text().splitlines()
    assert ours.csv_file == theirs.csv_file and ours_csv[0] == theirs_csv[0]
    assert np.allclose(np.array(ours_csv[1].split(","), dtype=float), np.array(theirs_csv[1].split(","), dtype=float),
                       rtol=1e-5, atol=1e-6)
    single = BinaryClassificationEvaluator(S1, S2, LABELS)(model)
    assert set(single) == {f"cosine_{metric}" for metric in
                           ("accuracy", "accuracy_threshold", "f1", "precision", "recall", "f1_threshold", "ap", "mcc")}


def test_wrong_labels_and_lengths_are_refused():
    from sentsim.errors import ConfigError
    from sentsim.evaluation import BinaryClassificationEvaluator

    with pytest.raises(ConfigError, match=r"labels must be 0 or 1; label 1 is 0\.5"):
        BinaryClassificationEvaluator(["a", "b"], ["c", "d"], [1, 0.5])
    with pytest.raises(ConfigError, match=r"differ in length \(2, 1, 2\)"):
        BinaryClassificationEvaluator(["a", "b"], ["c"], [1, 0])
    with pytest.raises(ValueError, match="similarity_fn_name must be one of cosine, dot, euclidean, manhattan, not"):
        BinaryClassificationEvaluator(["a"], ["c"], [1], similarity_fn_names=["jaccard"])


@pytest.mark.parametrize("greater_is_better", [True, False])
def test_their_static_searches_are_there_and_their_thresholds_reproduce_their_figures(greater_is_better):
    """sentence-transformers' own tests call these two; the thresholds they return must give the scores."""
    metrics = pytest.importorskip("sklearn.metrics")
    from sentsim.evaluation import BinaryClassificationEvaluator

    generator = np.random.default_rng(3)
    labels, scores = generator.integers(0, 2, 1000), generator.normal(size=1000)
    predict = (lambda threshold: scores >= threshold) if greater_is_better else (lambda threshold: scores <= threshold)
    f1, precision, recall, threshold = BinaryClassificationEvaluator.find_best_f1_and_threshold(
        scores, labels, high_score_more_similar=greater_is_better)
    assert f1 == pytest.approx(metrics.f1_score(labels, predict(threshold)), abs=1e-12)
    assert (precision, recall) == pytest.approx((metrics.precision_score(labels, predict(threshold)),
                                                 metrics.recall_score(labels, predict(threshold))), abs=1e-12)
    accuracy, threshold = BinaryClassificationEvaluator.find_best_acc_and_threshold(
        scores, labels, high_score_more_similar=greater_is_better)
    assert accuracy == pytest.approx(metrics.accuracy_score(labels, predict(threshold)), abs=1e-12)

