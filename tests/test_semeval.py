"""SemEval STS 2012–2016 sets as released: input and gold files side by side, read through --data."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sentsim.cli import EXIT_OK, EXIT_USAGE
from sentsim.data import load_pairs, read_semeval_sts
from sentsim.data.sources import is_single_set
from sentsim.errors import ConfigError, DataFormatError

from .cli_support import run_cli
from .conftest import TRAIN_PAIRS


def semeval_folder(folder: Path) -> Path:
    """A 2015-style set (blank gold lines, a quote mark) and a 2016-style one (source columns), plus noise."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "STS.input.headlines.txt").write_text(
        '"Lost" star dies\tLost actor dead at 60\nA cat sleeps.\tA dog barks.\nStocks fall.\tMarkets drop.\n',
        encoding="utf-8")
    (folder / "STS.gs.headlines.txt").write_text("4.6\n\n3.2\n\n", encoding="utf-8")  # a blank: pair 2 unscored
    (folder / "STS2016.input.answer-answer.txt").write_text(
        "It is red.\tIt is blue.\tsource-a\tsource-b\nYes.\tNo.\tsource-a\tsource-b\n", encoding="utf-8")
    (folder / "STS2016.gs.answer-answer.txt").write_text("1\n0\n", encoding="utf-8")
    (folder / "00-readme.txt").write_text("Gold standard for STS\n", encoding="utf-8")
    (folder / "STS.output.headlines.txt").write_text("0.5\n0.5\n0.5\n", encoding="utf-8")  # a system's output
    return folder


def test_a_semeval_folder_reads_every_set_as_a_genre(tmp_path: Path) -> None:
    folder = semeval_folder(tmp_path / "sts")
    dataset = load_pairs(folder, split="test")
    assert [(pair.genre, pair.line) for pair in dataset] == [("answer-answer", 1), ("answer-answer", 2),
                                                             ("headlines", 1), ("headlines", 3)]
    assert dataset.sentences1 == ["It is red.", "Yes.", '"Lost" star dies', "Stocks fall."]
    assert dataset.sentences2[2] == "Lost actor dead at 60"
    assert dataset.scores.tolist() == pytest.approx([0.2, 0.0, 0.92, 0.64])
    assert dataset.source == str(folder)
    (folder / "STS.gs.headlines.txt").write_text("4.6\n3.2\n\n", encoding="utf-8")  # the last pair unscored
    assert read_semeval_sts(folder / "STS.input.headlines.txt").sentences1 == ['"Lost" star dies', "A cat sleeps."]
    (folder / "STS.gs.headlines.txt").write_text("4.6\n\n3.2\n\n", encoding="utf-8")
    one = load_pairs(folder / "STS.input.headlines.txt")  # one input file: its gold file is found beside it
    assert one.sentences2 == ["Lost actor dead at 60", "Markets drop."] and one.genres == ["headlines"] * 2
    assert is_single_set(folder) and is_single_set(folder / "STS.input.headlines.txt")
    assert not is_single_set(None)


def test_semeval_errors_name_the_file_and_line(tmp_path: Path) -> None:
    folder = semeval_folder(tmp_path / "sts")
    (folder / "STS.gs.headlines.txt").write_text("4.6\n3.2\n", encoding="utf-8")
    with pytest.raises(DataFormatError, match=r"STS\.gs\.headlines\.txt: 2 lines of scores for the 3 lines of "
                                              r"sentence pairs in STS\.input\.headlines\.txt"):
        read_semeval_sts(folder)
    (folder / "STS.gs.headlines.txt").write_text("4.6\nhigh\n7\n", encoding="utf-8")
    with pytest.raises(DataFormatError) as caught:
        read_semeval_sts(folder)
    assert caught.value.path.endswith("STS.input.headlines.txt") and caught.value.line == 2
    assert "score 'high' in STS.gs.headlines.txt is not a number" in caught.value.reason
    dataset = read_semeval_sts(folder, skip_bad_rows=True)
    assert [(row.line, row.reason.split(":")[0]) for row in dataset.skipped] == [(2, "STS.input.headlines.txt"),
                                                                                 (3, "STS.input.headlines.txt")]
    assert "outside the declared range 0–5" in dataset.skipped[1].reason
    (folder / "STS.gs.headlines.txt").write_text("4.6\n1\n3\n", encoding="utf-8")
    (folder / "STS.input.headlines.txt").write_text("One sentence only\nA.\tB.\nC.\tD.\n", encoding="utf-8")
    with pytest.raises(DataFormatError, match=r"STS\.input\.headlines\.txt, line 1: expected two tab-separated"):
        read_semeval_sts(folder)
    with pytest.raises(ConfigError, match="holds no SemEval STS set"):
        read_semeval_sts(tmp_path)
    with pytest.raises(ConfigError, match="not a SemEval STS input file"):
        read_semeval_sts(folder / "00-readme.txt")


def test_evaluate_a_semeval_folder_and_refuse_what_does_not_apply(capsys, tmp_path: Path, model_dir: Path) -> None:
    folder = tmp_path / "STS15-en-test"
    folder.mkdir()
    sentences = [(a, b, score) for a, b, score in TRAIN_PAIRS]
    (folder / "STS.input.images.txt").write_text("".join(f"{a}\t{b}\n" for a, b, _ in sentences), encoding="utf-8")
    (folder / "STS.gs.images.txt").write_text("".join(f"{5 * s:g}\n" for _, _, s in sentences), encoding="utf-8")
    code, out, err = run_cli(capsys, "evaluate", model_dir, "--data", folder, "--bootstrap", "0", "--quiet")
    assert code == EXIT_OK, err
    assert f"{len(TRAIN_PAIRS)} pairs" in out and "by genre: images " in out
    code, out, err = run_cli(capsys, "evaluate", model_dir, "--data", folder, "--json", "--quiet", "--bootstrap", "0")
    assert code == EXIT_OK, err
    assert json.loads(out)["n_pairs"] == len(TRAIN_PAIRS)
    code, _, err = run_cli(capsys, "evaluate", model_dir, "--data", folder, "--split", "dev", "--quiet")
    assert code == EXIT_USAGE and "--split dev applies only to an STSb folder" in err and "is one set" in err
    code, _, err = run_cli(capsys, "train", "--base-model", model_dir, "--data", folder, "--output",
                           tmp_path / "run", "--quiet")
    assert code == EXIT_USAGE and "needs --dev-data" in err
    assert not (tmp_path / "run").exists()
