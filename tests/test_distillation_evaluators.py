"""MSEEvaluator and TranslationEvaluator, as sentence-transformers' own, on a sentsim model."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.conftest import TRAIN_PAIRS

SOURCES = [a for a, _, _ in TRAIN_PAIRS]
TARGETS = [b for _, b, _ in TRAIN_PAIRS]


@pytest.fixture
def fp32_models(tiny_transformer_dir):
    """Two different sentsim models (a student and a teacher), encoding in fp32 whoever calls them."""
    from sentsim import SentenceTransformer

    student = SentenceTransformer(str(tiny_transformer_dir))
    teacher = SentenceTransformer(str(tiny_transformer_dir))
    with torch.no_grad():
        for parameter in teacher.parameters():
            parameter.mul_(1.1)
    for model in (student, teacher):
        encode = model.encode
        model.encode = lambda *args, _encode=encode, **options: _encode(*args, **{**options, "dtype": "fp32"})
    return student, teacher


def test_mse_evaluator_equals_theirs(fp32_models, tmp_path):
    from sentsim.evaluation import MSEEvaluator

    student, teacher = fp32_models
    ours = MSEEvaluator(SOURCES, TARGETS, teacher_model=teacher, name="en-de")
    results = ours(student, output_path=str(tmp_path / "ours"), epoch=0, steps=1)
    assert results["en-de_negative_mse"] < 0 and ours.primary_metric == "en-de_negative_mse"
    assert MSEEvaluator(SOURCES, SOURCES, teacher_model=teacher)(teacher) == {"negative_mse": 0.0}
    evaluation = pytest.importorskip("sentence_transformers.evaluation")
    theirs = evaluation.MSEEvaluator(SOURCES, TARGETS, teacher_model=teacher, name="en-de")
    assert results == pytest.approx(theirs(student, output_path=str(tmp_path / "theirs"), epoch=0, steps=1),
                                    rel=1e-5)
    lines = [(tmp_path / side / ours.csv_file).read_text().splitlines() for side in ("ours", "theirs")]
    assert lines[0][0] == lines[1][0] == "epoch,steps,MSE"


def test_translation_evaluator_equals_theirs(fp32_models, tmp_path, capsys):
    from sentsim.evaluation import TranslationEvaluator

    student, _ = fp32_models
    sources, targets = [*SOURCES, "a duplicate"], [*TARGETS, TARGETS[0]]  # an equal target counts as a match
    ours = TranslationEvaluator(sources, targets, name="news", print_wrong_matches=True)
    results = ours(student, output_path=str(tmp_path / "ours"), epoch=1, steps=2)
    evaluation = pytest.importorskip("sentence_transformers.evaluation")
    theirs = evaluation.TranslationEvaluator(sources, targets, name="news")
    assert results == pytest.approx(theirs(student, output_path=str(tmp_path / "theirs"), epoch=1, steps=2))
    assert list(results) == ["news_src2trg_accuracy", "news_trg2src_accuracy", "news_mean_accuracy"]
    missed = round((1 - results["news_src2trg_accuracy"]) * len(sources))
    assert capsys.readouterr().out.count("Incorrect: source") == missed
    same = TranslationEvaluator(SOURCES, SOURCES)(student)
    assert same == {"src2trg_accuracy": 1.0, "trg2src_accuracy": 1.0, "mean_accuracy": 1.0}
    assert np.allclose(*[np.array((tmp_path / side / ours.csv_file).read_text().splitlines()[1].split(","),
                                  dtype=float) for side in ("ours", "theirs")])


def test_mismatched_lengths_and_a_missing_teacher_are_refused():
    from sentsim.errors import ConfigError
    from sentsim.evaluation import MSEEvaluator, TranslationEvaluator

    with pytest.raises(ConfigError, match=r"source_sentences \(2\) and target_sentences \(1\)"):
        TranslationEvaluator(["a", "b"], ["c"])
    with pytest.raises(ConfigError, match="needs the teacher_model"):
        MSEEvaluator(["a"], ["b"])
