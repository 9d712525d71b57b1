"""Tests for unscored pair files (`read_text_pairs`) and scoring them with a model (`score_pair_file`).

The model is replaced by fixed embeddings (``encode_pairs`` is monkeypatched), so these run without
weights and check only what the scoring stage owns: reading, cosine, calibration, output formats.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np
import pytest

import sentsim.inference.scoring as scoring
from sentsim.data import TextPair, read_text_pairs
from sentsim.errors import ConfigError, DataFormatError
from sentsim.inference.scoring import OUTPUT_COLUMNS, score_pair_file

# --------------------------------------------------------------------------------------------------
# read_text_pairs


def write(path: Path, text: str | bytes) -> Path:
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def test_reads_csv_ignoring_other_columns_and_keeping_lines(tmp_path: Path) -> None:
    path = write(tmp_path / "p.csv", 'id,sentence1,sentence2,score\n1,A cat.,"A cat, sitting.",4\n\n2, B ,C,1\n')
    assert read_text_pairs(path) == [TextPair("A cat.", "A cat, sitting.", line=2), TextPair("B", "C", line=4)]


def test_reads_tsv_with_custom_columns_matched_ignoring_case(tmp_path: Path) -> None:
    path = write(tmp_path / "p.tsv", "Left\tRight\nA dog.\tA puppy.\n")
    pairs = read_text_pairs(path, sentence1_column="left", sentence2_column="right")
    assert pairs == [TextPair("A dog.", "A puppy.", line=2)]


def test_reads_jsonl(tmp_path: Path) -> None:
    path = write(tmp_path / "p.jsonl", '{"sentence1": "x", "sentence2": "y"}\n\n{"sentence1": "z", "sentence2": "w"}\n')
    assert read_text_pairs(path) == [TextPair("x", "y", line=1), TextPair("z", "w", line=3)]


@pytest.mark.parametrize(
    ("name", "content", "line", "reason"),
    [
        ("e.csv", "sentence1,sentence2\nA,  \n", 2, "empty sentence in column 'sentence2'"),
        ("c.csv", "sentence1,sentence2\nA,B\nA,B,C\n", 3, "expected 2 columns as in the header, found 3"),
        ("m.csv", "sentence1,text\nA,B\n", 1, "header lacks column 'sentence2'; found columns: 'sentence1', 'text'"),
        ("u.tsv", b"sentence1\tsentence2\nA\tB\n\xff\tC\n", 3, "not valid UTF-8: byte 0xff"),
        ("j.jsonl", '{"sentence1": "A", "sentence2": "B"}\n{"sentence1": "A",\n', 2, "invalid JSON"),
        ("k.jsonl", '{"sentence1": "A"}\n', 1, "missing key 'sentence2'; found keys: 'sentence1'"),
        ("n.jsonl", '{"sentence1": "A", "sentence2": ""}\n', 1, "empty sentence in key 'sentence2'"),
    ],
)
def test_bad_rows_name_file_line_and_reason(
    tmp_path: Path, name: str, content: str | bytes, line: int, reason: str
) -> None:
    path = write(tmp_path / name, content)
    with pytest.raises(DataFormatError) as caught:
        read_text_pairs(path)
    assert caught.value.path == str(path) and caught.value.line == line
    assert reason in caught.value.reason
    assert str(caught.value).startswith(f"{path}, line {line}: ")


def test_empty_file_and_unknown_extension(tmp_path: Path) -> None:
    with pytest.raises(DataFormatError, match="file is empty"):
        read_text_pairs(write(tmp_path / "blank.csv", "\n  \n"))
    with pytest.raises(ConfigError, match="cannot tell the format"):
        read_text_pairs(write(tmp_path / "p.xlsx", "a b\n"))


def test_skip_bad_rows_keeps_good_ones_but_not_an_all_bad_file(tmp_path: Path) -> None:
    path = write(tmp_path / "p.csv", "sentence1,sentence2\nA,\nB,C\n")
    assert read_text_pairs(path, skip_bad_rows=True) == [TextPair("B", "C", line=3)]
    with pytest.raises(DataFormatError, match=r"no usable pairs: all 1 data rows are bad \(first: line 2"):
        read_text_pairs(write(tmp_path / "bad.csv", "sentence1,sentence2\nA,\n"), skip_bad_rows=True)


# --------------------------------------------------------------------------------------------------
# score_pair_file

# Unit-length embeddings chosen so the cosines are exact: same → 1, orthogonal → 0, opposite → -1,
# and 0.6 for "half" against "same".
EMBEDDINGS = {
    "same": [1.0, 0.0],
    "other": [0.0, 1.0],
    "opposite": [-1.0, 0.0],
    "half": [0.6, 0.8],
}


class LinearCalibration:
    """Stands in for `IsotonicCalibration`: cosine -1..1 → 0..5, easy to check by hand."""

    def predict(self, cosines: np.ndarray) -> np.ndarray:
        return (np.asarray(cosines, dtype=np.float64) + 1.0) * 2.5


class FakeModel:
    def __init__(self, calibration: LinearCalibration | None = None) -> None:
        self.calibration = calibration


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, object]]:
    """Replace the model pass with fixed embeddings and record each call's options."""
    seen: list[dict[str, object]] = []

    def fake_encode_pairs(
        model: object, sentences1: list[str], sentences2: list[str], **options: object
    ) -> tuple[np.ndarray, np.ndarray]:
        seen.append({"n1": list(sentences1), "n2": list(sentences2), **options})
        return (
            np.array([EMBEDDINGS[s] for s in sentences1], dtype=np.float32),
            np.array([EMBEDDINGS[s] for s in sentences2], dtype=np.float32),
        )

    monkeypatch.setattr(scoring, "encode_pairs", fake_encode_pairs)
    return seen


@pytest.fixture
def pair_file(tmp_path: Path) -> Path:
    return write(tmp_path / "in.csv", "sentence1,sentence2\nsame,same\nsame,other\nsame,opposite\nsame,half\n")


def read_csv(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def test_csv_output_with_calibration(tmp_path: Path, pair_file: Path, calls: list[dict[str, object]]) -> None:
    output = tmp_path / "out" / "scores.csv"
    count = score_pair_file(FakeModel(LinearCalibration()), pair_file, output=output, batch_size=7, quiet=True)
    assert count == 4
    assert len(calls) == 1  # one batched pass for all pairs
    assert calls[0]["batch_size"] == 7 and calls[0]["normalize"] is True and calls[0]["dtype"] == "auto"
    text = output.read_text(encoding="utf-8")
    assert text.splitlines()[0] == ",".join(OUTPUT_COLUMNS)
    rows = read_csv(text)
    assert [row["sentence2"] for row in rows] == ["same", "other", "opposite", "half"]
    assert [float(row["cosine"]) for row in rows] == pytest.approx([1.0, 0.0, -1.0, 0.6])
    assert [float(row["score_0_5"]) for row in rows] == pytest.approx([5.0, 2.5, 0.0, 4.0])


def test_jsonl_output_without_calibration_has_null_scores(
    tmp_path: Path, pair_file: Path, calls: list[dict[str, object]]
) -> None:
    output = tmp_path / "scores.jsonl"
    assert score_pair_file(FakeModel(), pair_file, output=output, quiet=True) == 4
    records = [json.loads(line) for line in output.read_text(encoding="utf-8").splitlines()]
    assert [list(record) for record in records] == [list(OUTPUT_COLUMNS)] * 4
    assert [record["cosine"] for record in records] == pytest.approx([1.0, 0.0, -1.0, 0.6])
    assert all(record["score_0_5"] is None for record in records)


def test_csv_without_calibration_leaves_score_empty(
    tmp_path: Path, pair_file: Path, calls: list[dict[str, object]]
) -> None:
    output = tmp_path / "scores.csv"
    score_pair_file(FakeModel(), pair_file, output=output, quiet=True)
    assert {row["score_0_5"] for row in read_csv(output.read_text(encoding="utf-8"))} == {""}


def test_stdout_mode_prints_csv_and_summary_goes_to_stderr(
    pair_file: Path, calls: list[dict[str, object]], capsys: pytest.CaptureFixture[str]
) -> None:
    assert score_pair_file(FakeModel(LinearCalibration()), pair_file, output=None) == 4
    captured = capsys.readouterr()
    rows = read_csv(captured.out)
    assert len(rows) == 4 and rows[3] == {"sentence1": "same", "sentence2": "half", "cosine": "0.6", "score_0_5": "4.0"}
    assert "scored 4 pairs" in captured.err
    assert calls[0]["show_progress"] is None  # not quiet: the encoder decides by size


def test_quiet_prints_nothing_to_stderr(
    pair_file: Path, calls: list[dict[str, object]], capsys: pytest.CaptureFixture[str]
) -> None:
    score_pair_file(FakeModel(), pair_file, output=None, quiet=True)
    assert capsys.readouterr().err == ""
    assert calls[0]["show_progress"] is False


def test_custom_columns_reach_the_reader(tmp_path: Path, calls: list[dict[str, object]]) -> None:
    path = write(tmp_path / "in.jsonl", '{"a": "same", "b": "half", "score": 3}\n')
    output = tmp_path / "o.jsonl"
    score_pair_file(FakeModel(), path, output=output, quiet=True, sentence1_column="a", sentence2_column="b")
    assert json.loads(output.read_text(encoding="utf-8"))["cosine"] == pytest.approx(0.6)


def test_unsupported_output_extension_fails_before_encoding(
    tmp_path: Path, pair_file: Path, calls: list[dict[str, object]]
) -> None:
    with pytest.raises(ConfigError, match=r"\.csv or \.jsonl"):
        score_pair_file(FakeModel(), pair_file, output=tmp_path / "scores.xlsx", quiet=True)
    assert calls == []
    assert not (tmp_path / "scores.xlsx").exists()


def test_bad_input_leaves_existing_output_untouched_and_no_temporaries(
    tmp_path: Path, pair_file: Path, calls: list[dict[str, object]]
) -> None:
    output = tmp_path / "scores.csv"
    score_pair_file(FakeModel(), pair_file, output=output, quiet=True)
    before = output.read_bytes()
    bad = write(tmp_path / "bad.csv", "sentence1,sentence2\nsame,\n")
    with pytest.raises(DataFormatError, match="line 2"):
        score_pair_file(FakeModel(), bad, output=output, quiet=True)
    assert output.read_bytes() == before
    assert sorted(path.name for path in tmp_path.iterdir()) == ["bad.csv", "in.csv", "scores.csv"]


def test_write_failure_leaves_no_temporary_file(
    tmp_path: Path, pair_file: Path, calls: list[dict[str, object]], monkeypatch: pytest.MonkeyPatch
) -> None:
    output = tmp_path / "scores.csv"
    output.write_text("old\n", encoding="utf-8")

    def failing_replace(source: object, target: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr("sentsim.persistence.atomic.os.replace", failing_replace)
    with pytest.raises(OSError, match="disk full"):
        score_pair_file(FakeModel(), pair_file, output=output, quiet=True)
    assert output.read_text(encoding="utf-8") == "old\n"
    assert sorted(path.name for path in tmp_path.iterdir()) == ["in.csv", "scores.csv"]


def test_sentences_with_commas_quotes_and_unicode_round_trip(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        scoring,
        "encode_pairs",
        lambda model, s1, s2, **options: (np.ones((len(s1), 2)) / np.sqrt(2), np.ones((len(s2), 2)) / np.sqrt(2)),
    )
    record = {"sentence1": 'Ein "Zitat", bitte', "sentence2": "café\tß"}
    source = write(tmp_path / "in.jsonl", json.dumps(record) + "\n")
    output = tmp_path / "o.csv"
    score_pair_file(FakeModel(), source, output=output, quiet=True)
    [row] = read_csv(output.read_text(encoding="utf-8"))
    assert row["sentence1"] == 'Ein "Zitat", bitte' and row["sentence2"] == "café\tß"
    assert float(row["cosine"]) == pytest.approx(1.0)
