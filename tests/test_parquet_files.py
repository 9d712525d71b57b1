"""Parquet pair files, as datasets on the Hugging Face Hub are stored: read like CSV and JSONL (same checks,
same hints, same --skip-bad-rows), rows numbered from 1, and clear errors for broken files or no pyarrow."""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import pytest

from sentsim.data import read_anchor_positive_file, read_pair_file, read_text_pairs
from sentsim.errors import ConfigError, DataFormatError, ScoreScaleWarning

from .cli_support import run_cli

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")


def _parquet(path: Path, columns: dict[str, list]) -> Path:
    pq.write_table(pa.table(columns), path)
    return path


def test_a_parquet_file_reads_as_a_csv_would(tmp_path: Path) -> None:
    path = _parquet(tmp_path / "train-00000-of-00001.parquet",
                    {"sentence1": ["A dog runs.", "B.", "D."], "sentence2": ["A dog is running.", "C.", "E."],
                     "score": [4.5, 0.0, 5.0], "genre": ["news", "forum", "news"]})
    dataset = read_pair_file(path, genre_column="genre")
    assert dataset.scores.tolist() == [0.9, 0.0, 1.0] and dataset.sentences2[0] == "A dog is running."
    assert [pair.line for pair in dataset] == [1, 2, 3] and dataset.genres == ["news", "forum", "news"]
    assert [(pair.sentence1, pair.sentence2) for pair in read_text_pairs(path)] == [
        ("A dog runs.", "A dog is running."), ("B.", "C."), ("D.", "E.")]


def test_the_hubs_zero_to_one_scores_and_other_sets_names_get_the_usual_advice(tmp_path: Path) -> None:
    scores = [round(i / 24, 3) for i in range(25)]  # sentence-transformers/stsb's scores are 0–1
    stsb = _parquet(tmp_path / "stsb.parquet", {"sentence1": [f"a {i}" for i in range(25)],
                                                "sentence2": [f"b {i}" for i in range(25)], "score": scores})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        read_pair_file(stsb)
    assert any(issubclass(item.category, ScoreScaleWarning) and "--score-range 0 1" in str(item.message)
               for item in caught)
    assert read_pair_file(stsb, score_range=(0, 1)).scores.tolist() == pytest.approx(scores)
    sick = _parquet(tmp_path / "sick.parquet", {"sentence_A": ["a"], "sentence_B": ["b"], "relatedness_score": [3.0]})
    with pytest.raises(DataFormatError, match="--sentence1-column sentence_A --sentence2-column sentence_B "
                                              "--score-column relatedness_score") as error:
        read_pair_file(sick)
    assert error.value.line is None and str(sick) in str(error.value)
    assert read_pair_file(sick, sentence1_column="sentence_A", sentence2_column="sentence_B",
                          score_column="relatedness_score", score_range=(1, 5)).scores.tolist() == [0.5]


def test_bad_rows_are_named_by_row_number_and_can_be_skipped(tmp_path: Path) -> None:
    path = _parquet(tmp_path / "bad.parquet", {"sentence1": ["a", "b", "c", None], "sentence2": ["x", "y", "", "w"],
                                                "score": [1.0, None, 2.0, 3.0]})
    with pytest.raises(DataFormatError, match=r"bad\.parquet, line 2: .*score") as error:
        read_pair_file(path)
    assert error.value.line == 2
    dataset = read_pair_file(path, skip_bad_rows=True)
    assert [pair.line for pair in dataset] == [1] and [row.line for row in dataset.skipped] == [2, 3, 4]
    numbers = _parquet(tmp_path / "numbers.parquet", {"sentence1": [1], "sentence2": ["x"], "score": [1.0]})
    with pytest.raises(DataFormatError, match="line 1"):
        read_pair_file(numbers)
    text_scores = _parquet(tmp_path / "text.parquet", {"sentence1": ["a"], "sentence2": ["x"], "score": ["4.5"]})
    assert read_pair_file(text_scores).scores.tolist() == [0.9]  # as a CSV field would be read


def test_broken_empty_and_unreadable_parquet_files_are_one_clear_error(tmp_path: Path, monkeypatch) -> None:
    broken = tmp_path / "broken.parquet"
    broken.write_bytes(b"PAR1 this is not really parquet")
    with pytest.raises(DataFormatError, match=r"broken\.parquet: not a readable Parquet file"):
        read_pair_file(broken)
    empty = _parquet(tmp_path / "empty.parquet", {"sentence1": pa.array([], pa.string()),
                                                  "sentence2": pa.array([], pa.string()),
                                                  "score": pa.array([], pa.float64())})
    with pytest.raises(DataFormatError, match="no data rows"):
        read_pair_file(empty)
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)  # as if pyarrow were not installed
    with pytest.raises(ConfigError, match=r'needs pyarrow.*pip install "sentsim\[parquet\]"'):
        read_pair_file(empty)


def test_anchor_files_in_parquet_find_their_negative_column(tmp_path: Path) -> None:
    path = _parquet(tmp_path / "triplets.parquet", {"anchor": ["q1", "q2"], "positive": ["p1", "p2"],
                                                     "Negative": ["n1", "n2"]})
    rows = read_anchor_positive_file(path).rows
    assert [(row.anchor, row.positive, row.negative, row.line) for row in rows] == [
        ("q1", "p1", "n1", 1), ("q2", "p2", "n2", 2)]


def test_evaluate_reads_a_parquet_file_from_the_command_line(capsys, tmp_path: Path, model_dir: Path) -> None:
    path = _parquet(tmp_path / "test.parquet", {"sentence1": ["a man plays a flute", "a dog runs", "the red car"],
                                                "sentence2": ["a man plays the flute", "a cat sleeps", "a red car"],
                                                "score": [4.6, 0.8, 4.2]})
    code, out, err = run_cli(capsys, "evaluate", model_dir, "--data", path, "--quiet")
    assert code == 0, err
    assert f"on {path}: 3 pairs" in out and "cosine" in out
