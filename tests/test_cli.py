"""The ``sentsim`` command end to end on a tiny random model: bad input, usage errors and every command's happy path."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import re
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
import torch

from sentsim.cli import EXIT_OK, EXIT_USAGE, main

from .conftest import REPO, TRAIN_PAIRS

HEADER = "sentence1\tsentence2\tscore\n"
GOOD_ROW = "a man is playing a flute\ta man is playing a guitar\t3\n"


# -- fixtures and helpers -----------------------------------------------------------------------------
def _pair_file(path: Path, pairs: Sequence[tuple[str, str, float]] = TRAIN_PAIRS) -> Path:
    """A TSV pair file with scores scaled from 0–1 to the default 0–5 range."""
    path.write_text(HEADER + "".join(f"{a}\t{b}\t{score * 5:g}\n" for a, b, score in pairs), encoding="utf-8")
    return path


def stsb_folder(folder: Path) -> Path:
    """A folder in the STS benchmark's own layout (sts-train/dev/test.csv, tab-separated) from TRAIN_PAIRS."""
    folder.mkdir(parents=True, exist_ok=True)
    orders = {"train": TRAIN_PAIRS, "dev": TRAIN_PAIRS[::-1], "test": TRAIN_PAIRS[1:] + TRAIN_PAIRS[:1]}
    for split, pairs in orders.items():
        rows = [f"main-captions\tMSRvid\t2012test\t{index:04d}\t{score * 5:.3f}\t{a}\t{b}\n"
                for index, (a, b, score) in enumerate(pairs)]
        (folder / f"sts-{split}.csv").write_text("".join(rows), encoding="utf-8")
    return folder


@pytest.fixture(scope="module")
def model_dir(tiny_transformer_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny BERT with mean pooling, saved as a sentsim model folder (never written to by tests)."""
    from sentsim import SentenceTransformer

    folder = tmp_path_factory.mktemp("cli-model") / "model"
    SentenceTransformer.from_transformer(tiny_transformer_dir, pooling="mean").save(folder)
    return folder


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """train.tsv, dev.tsv and test.tsv built from TRAIN_PAIRS."""
    folder = tmp_path_factory.mktemp("cli-data")
    _pair_file(folder / "train.tsv")
    _pair_file(folder / "dev.tsv", TRAIN_PAIRS[::-1])
    _pair_file(folder / "test.tsv", TRAIN_PAIRS[1:] + TRAIN_PAIRS[:1])
    return folder


@pytest.fixture(scope="module")
def trained_run(model_dir: Path, data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[int, str, Path]:
    """One full ``sentsim train --json`` run shared by the tests that read or reuse its run folder."""
    run = tmp_path_factory.mktemp("cli-train") / "run"
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        code = main(["train", "--base-model", str(model_dir), "--data", str(data_dir / "train.tsv"),
                     "--dev-data", str(data_dir / "dev.tsv"), "--test-data", str(data_dir / "test.tsv"),
                     "--epochs", "2", "--batch-size", "4", "--json", "--output", str(run)])
    assert code == EXIT_OK, stderr.getvalue()
    return code, stdout.getvalue(), run


def run_cli(capsys: pytest.CaptureFixture[str], *argv: object) -> tuple[int, str, str]:
    capsys.readouterr()  # drop anything an earlier step of the same test printed
    code = main([str(arg) for arg in argv])
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(code: int, err: str, *fragments: str) -> str:
    """Exit 2, exactly one ``error: ...`` line on stderr (no traceback), holding every fragment."""
    assert code == EXIT_USAGE, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("error: "), err
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in lines[0], f"{fragment!r} not in {lines[0]!r}"
    return lines[0]


def no_leftovers(run: Path) -> None:
    assert not run.exists()
    assert not list(run.parent.glob(f".{run.name}.*")), list(run.parent.iterdir())


# -- bad input ------------------------------------------------------------------------------------------
BAD_FILES = [
    # (file name, content, extra options, line named in the message or None, reason)
    ("columns.tsv", HEADER + GOOD_ROW + "only one\tcolumn\n", (), 3, "expected 3 columns as in the header, found 2"),
    ("columns.csv", "sentence1,sentence2,score\na man eats,a man eats food,4,extra\n", (), 2,
     "expected 3 columns as in the header, found 4"),
    ("empty-sentence.tsv", HEADER + "   \ta dog runs\t2\n", (), 2, "empty sentence in column 'sentence1'"),
    ("score-text.tsv", HEADER + GOOD_ROW + "a cat\ta dog\thigh\n", (), 3,
     "score 'high' in column 'score' is not a number"),
    ("score-range.tsv", HEADER + "a cat\ta dog\t0.5\n" + GOOD_ROW, ("--score-range", "0", "1"), 3,
     "score 3 in column 'score' is outside the declared range 0–1"),
    ("bytes.tsv", (HEADER + GOOD_ROW).encode() + b"a cat \xff\xfe\ta dog\t1\n", (), 3,
     "not valid UTF-8: byte 0xff"),
    ("empty.tsv", "\n  \n", (), None, "file is empty"),
    ("invalid.jsonl", '{"sentence1": "a cat", "sentence2": "a dog", "score": 1}\n{"sentence1": "a cat",\n', (), 2,
     "invalid JSON"),
    ("header.tsv", "sentence1\tsentence2\tlabel\n" + GOOD_ROW, (), 1,
     "header lacks column 'score'; found columns: 'sentence1', 'sentence2', 'label'"),
]


@pytest.mark.parametrize(("name", "content", "options", "line", "reason"), BAD_FILES,
                         ids=[case[0] for case in BAD_FILES])
def test_evaluate_bad_file_names_file_line_and_reason(capsys, tmp_path, model_dir, name, content, options, line,
                                                      reason):
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    code, out, err = run_cli(capsys, "evaluate", model_dir, "--data", path, "--bootstrap", "0", "--quiet",
                             *options)
    message = assert_one_line_error(code, err, str(path), reason)
    if line is not None:
        assert f"{path}, line {line}: " in message
    assert out == ""


def test_evaluate_unsupported_extension(capsys, tmp_path, model_dir):
    path = tmp_path / "pairs.xlsx"
    path.write_text(HEADER + GOOD_ROW, encoding="utf-8")
    code, _, err = run_cli(capsys, "evaluate", model_dir, "--data", path, "--quiet")
    assert_one_line_error(code, err, str(path), "cannot tell the format", ".csv", ".tsv", ".txt", ".jsonl")


def test_evaluate_a_sick_style_txt_file(capsys, tmp_path, model_dir, data_dir):
    """SICK ships tab-separated .txt with its own column names and 1–5 scores; the same pairs as a .tsv score alike."""
    rows = (data_dir / "test.tsv").read_text(encoding="utf-8").splitlines()[1:]
    sick = tmp_path / "SICK_test.txt"
    sick.write_text("pair_ID\tsentence_A\tsentence_B\trelatedness_score\n" + "".join(
        f"{number}\t{a}\t{b}\t{1 + 4 * float(score) / 5}\n"
        for number, (a, b, score) in enumerate((row.split("\t") for row in rows), start=1)), encoding="utf-8")
    code, out, err = run_cli(capsys, "evaluate", model_dir, "--data", data_dir / "test.tsv", "--json", "--quiet")
    assert code == EXIT_OK, err
    expected = json.loads(out)
    code, out, err = run_cli(capsys, "evaluate", model_dir, "--data", sick, "--sentence1-column", "sentence_A",
                             "--sentence2-column", "sentence_B", "--score-column", "relatedness_score",
                             "--score-range", "1", "5", "--json", "--quiet")
    assert code == EXIT_OK, err
    result = json.loads(out)
    assert result["n_pairs"] == expected["n_pairs"] == len(rows)
    assert result["spearman_cosine"] == pytest.approx(expected["spearman_cosine"], abs=1e-9)


def test_a_score_scale_warning_is_one_line(capsys, tmp_path, model_dir):
    """0–1 scores under the default 0–5 range: the command runs and says so in one ``warning:`` line."""
    path = tmp_path / "normalised.tsv"
    path.write_text(HEADER + "".join(f"a cat {i}\ta dog {i}\t{i / 24:.3f}\n" for i in range(25)), encoding="utf-8")
    code, out, err = run_cli(capsys, "evaluate", model_dir, "--data", path, "--json", "--quiet")
    assert code == EXIT_OK, err
    assert json.loads(out)["n_pairs"] == 25
    warned = [line for line in err.splitlines() if "lie between 0 and 1" in line]
    assert len(warned) == 1 and warned[0].startswith("warning: all 25 scores in ") and "--score-range 0 1" in warned[0]
    assert "ScoreScaleWarning" not in err and "pairs.py" not in err  # no Python warning format


def test_evaluate_missing_file_or_folder(capsys, tmp_path, model_dir):
    missing = tmp_path / "nowhere" / "pairs.tsv"
    code, _, err = run_cli(capsys, "evaluate", model_dir, "--data", missing, "--quiet")
    assert_one_line_error(code, err, str(missing), "no such file or folder")


def test_evaluate_folder_without_stsb_files(capsys, tmp_path, model_dir):
    folder = tmp_path / "not-stsb"
    folder.mkdir()
    (folder / "pairs.tsv").write_text(HEADER + GOOD_ROW, encoding="utf-8")
    code, _, err = run_cli(capsys, "evaluate", model_dir, "--data", folder, "--quiet")
    assert_one_line_error(code, err, str(folder), "has no sts-test.csv", ".csv, .tsv, .txt or .jsonl file")


def test_evaluate_skip_bad_rows_reports_the_skipped_lines(capsys, tmp_path, model_dir):
    rows = [f"{a}\t{b}\t{score * 5:g}\n" for a, b, score in TRAIN_PAIRS]
    rows[1] = "a cat\ta dog\tmany\n"  # line 3
    rows[4] = "\ta dog\t2\n"  # line 6
    path = tmp_path / "some-bad.tsv"
    path.write_text(HEADER + "".join(rows), encoding="utf-8")

    code, _, err = run_cli(capsys, "evaluate", model_dir, "--data", path, "--bootstrap", "0", "--quiet")
    assert_one_line_error(code, err, f"{path}, line 3")

    code, out, err = run_cli(capsys, "evaluate", model_dir, "--data", path, "--bootstrap", "0", "--quiet",
                             "--json", "--skip-bad-rows")
    assert code == EXIT_OK, err
    assert json.loads(out)["n_pairs"] == len(TRAIN_PAIRS) - 2
    assert "warning: skipped 2 bad rows" in err
    assert str(path) in err and "lines 3, 6" in err and "is not a number" in err


def test_evaluate_needs_two_pairs(capsys, tmp_path, model_dir):
    path = _pair_file(tmp_path / "one.tsv", TRAIN_PAIRS[:1])
    code, _, err = run_cli(capsys, "evaluate", model_dir, "--data", path, "--quiet")
    assert_one_line_error(code, err, str(path), "need at least 2 pairs", "found 1")


def test_bad_data_is_reported_before_the_model_loads(capsys, monkeypatch, tmp_path, data_dir):
    def load_model(name: str):
        raise AssertionError(f"loaded {name} before checking the input")

    monkeypatch.setattr("sentsim.cli.common.load_model", load_model)
    bad = tmp_path / "bad.tsv"
    bad.write_text(HEADER + "a cat\ta dog\t9\n", encoding="utf-8")
    for command in ("evaluate", "calibrate", "compare"):
        models = ["model-a", "model-b"] if command == "compare" else [tmp_path]
        code, _, err = run_cli(capsys, command, *models, "--data", bad, "--quiet")
        assert_one_line_error(code, err, f"{bad}, line 2: ")
    # a name (not a folder) cannot be calibrated in place: said before any hub lookup or download
    code, _, err = run_cli(capsys, "calibrate", "some-hub-model", "--data", data_dir / "dev.tsv")
    assert_one_line_error(code, err, "some-hub-model is not a folder", "--output")


def _strict_json(text: str) -> dict:
    def refuse(constant: str) -> None:
        raise AssertionError(f"{constant} is not JSON")

    return json.loads(text, parse_constant=refuse)


def test_constant_gold_scores_are_bad_input(capsys, tmp_path, model_dir):
    # Constant gold scores make every correlation undefined: said up front, before any model loads.
    path = _pair_file(tmp_path / "constant.tsv", [(a, b, 0.6) for a, b, _ in TRAIN_PAIRS[:4]])
    for command in (["evaluate", model_dir], ["compare", model_dir, model_dir]):
        code, _out, err = run_cli(capsys, *command, "--data", path, "--json", "--quiet")
        assert_one_line_error(code, err, str(path), "all gold scores are equal")


@pytest.mark.parametrize("bad_split", ["data", "dev-data", "test-data"])
def test_train_bad_data_fails_without_leaving_a_run_folder(capsys, tmp_path, model_dir, data_dir, bad_split):
    bad = tmp_path / "bad.tsv"
    bad.write_text(HEADER + GOOD_ROW + "a cat\ta dog\t7\n", encoding="utf-8")
    files = {"data": data_dir / "train.tsv", "dev-data": data_dir / "dev.tsv", "test-data": data_dir / "test.tsv",
             bad_split: bad}
    run = tmp_path / "runs" / "bad"
    run.parent.mkdir()
    code, out, err = run_cli(capsys, "train", "--base-model", model_dir, "--output", run, "--quiet",
                             *[arg for option, path in files.items() for arg in (f"--{option}", path)])
    assert_one_line_error(code, err, f"{bad}, line 3: ", "outside the declared range 0–5")
    assert out == ""
    no_leftovers(run)


def test_train_failure_inside_the_run_removes_the_temporary_folder(capsys, tmp_path, model_dir, data_dir):
    # The loss is built inside the loop, after the run folder was started: the half-written folder must go.
    run = tmp_path / "runs" / "bad-loss"
    run.parent.mkdir()
    code, _, err = run_cli(capsys, "train", "--base-model", model_dir, "--data", data_dir / "train.tsv",
                           "--dev-data", data_dir / "dev.tsv", "--loss", "nonsense", "--output", run, "--quiet")
    assert_one_line_error(code, err, "unknown loss 'nonsense'")
    no_leftovers(run)


# -- usage errors -----------------------------------------------------------------------------------------
@pytest.mark.parametrize(("argv", "reason"), [
    ([], "the following arguments are required: COMMAND"),
    (["frobnicate"], "invalid choice: 'frobnicate'"),
    (["evaluate"], "the following arguments are required: model"),
    (["encode", "some-model"], "the following arguments are required: file"),
    (["compare", "only-a"], "the following arguments are required: model_b"),
    (["evaluate", "m", "--bootstrap", "many"], "invalid int value: 'many'"),
    (["evaluate", "m", "--split", "validation"], "invalid choice: 'validation'"),
    (["train", "--no-such-option"], "unrecognized arguments: --no-such-option"),
], ids=["no-command", "unknown-command", "no-model", "no-file", "one-model", "bad-int", "bad-split", "bad-option"])
def test_usage_errors_are_one_line(capsys, argv, reason):
    code, out, err = run_cli(capsys, *argv)
    assert_one_line_error(code, err, reason)
    assert out == ""


def test_similarity_needs_two_texts_or_pairs(capsys, model_dir, data_dir):
    code, _, err = run_cli(capsys, "similarity", model_dir, "just one text")
    assert_one_line_error(code, err, "similarity takes two texts, or --pairs FILE")
    code, _, err = run_cli(capsys, "similarity", model_dir, "a", "b", "c")
    assert_one_line_error(code, err, "similarity takes two texts")
    code, _, err = run_cli(capsys, "similarity", model_dir, "a", "b", "--pairs", data_dir / "test.tsv")
    assert_one_line_error(code, err, "not both")


def test_train_on_a_pair_file_needs_dev_data(capsys, tmp_path, model_dir, data_dir):
    run = tmp_path / "run"
    code, _, err = run_cli(capsys, "train", "--base-model", model_dir, "--data", data_dir / "train.tsv",
                           "--output", run, "--quiet")
    assert_one_line_error(code, err, "--dev-data")
    no_leftovers(run)


def test_bad_options_and_missing_model(capsys, tmp_path, model_dir, data_dir):
    code, _, err = run_cli(capsys, "evaluate", model_dir, "--data", data_dir / "test.tsv", "--score-range", "5", "0")
    assert_one_line_error(code, err, "score_range", "low < high")
    missing = tmp_path / "no-model"
    code, _, err = run_cli(capsys, "evaluate", missing, "--data", data_dir / "test.tsv")
    assert_one_line_error(code, err, str(missing))
    code, _, err = run_cli(capsys, "report", tmp_path / "no-run")
    assert_one_line_error(code, err, str(tmp_path / "no-run"))


def test_installed_command_help_exits_zero():
    script = Path(sys.executable).with_name("sentsim")
    if not script.is_file():
        script = REPO / ".venv" / "bin" / "sentsim"
    result = subprocess.run([str(script), "--help"], capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    assert "usage: sentsim" in result.stdout
    for command in ("train", "evaluate", "similarity", "encode", "calibrate", "compare", "report"):
        assert command in result.stdout


# -- happy paths ------------------------------------------------------------------------------------------
def test_evaluate_json_and_bootstrap_intervals(capsys, model_dir, data_dir):
    code, out, err = run_cli(capsys, "evaluate", model_dir, "--data", data_dir / "test.tsv", "--bootstrap", "0",
                             "--json", "--quiet")
    assert code == EXIT_OK, err
    result = json.loads(out)  # one JSON object and nothing else on stdout
    assert {"spearman_cosine", "pearson_cosine"} <= set(result)
    assert not any(key.endswith("_ci") for key in result)
    assert result["n_pairs"] == len(TRAIN_PAIRS)
    assert -100 <= result["spearman_cosine"] <= 100

    code, out, err = run_cli(capsys, "evaluate", model_dir, "--data", data_dir / "test.tsv", "--bootstrap", "50",
                             "--json", "--quiet")
    assert code == EXIT_OK, err
    result = json.loads(out)
    low, high = result["spearman_cosine_ci"]
    assert low <= high
    assert "pearson_cosine_ci" in result


def test_evaluate_prints_a_table(capsys, model_dir, data_dir):
    code, out, err = run_cli(capsys, "evaluate", model_dir, "--data", data_dir / "test.tsv", "--bootstrap", "20",
                             "--quiet")
    assert code == EXIT_OK, err
    assert f"{len(TRAIN_PAIRS)} pairs" in out
    for measure in ("cosine", "dot", "euclidean", "manhattan"):
        assert re.search(rf"^{measure}\s+-?\d+\.\d\d\s+-?\d+\.\d\d\s+\[", out, re.MULTILINE), out


def test_train_writes_a_complete_run_folder(trained_run):
    _, out, run = trained_run
    figures = json.loads(out)
    for key in ("dev_spearman_cosine", "test_spearman_cosine", "base_test_spearman_cosine", "best_step"):
        assert key in figures
    assert figures["output"] == str(run)
    for name in ("config.json", "metrics.jsonl", "summary.json", "predictions.jsonl", "report.html", "report.md"):
        assert (run / name).is_file(), name
    assert list((run / "plots").glob("*.png"))
    assert (run / "model" / "calibration.json").is_file()
    assert (run / "model" / "README.md").is_file()
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert any(record["kind"] == "eval" and record["step"] == 0 for record in records)
    summary = json.loads((run / "summary.json").read_text())
    assert summary["test"]["spearman_cosine"] == figures["test_spearman_cosine"]
    assert len((run / "predictions.jsonl").read_text().splitlines()) == len(TRAIN_PAIRS)
    config = json.loads((run / "config.json").read_text())
    assert config["epochs"] == 2 and config["batch_size"] == 4
    # the command given to main(), not the host's sys.argv (pytest's here)
    assert config["command"].startswith("sentsim train --base-model ")
    assert config["command"].endswith(f"--output {run}")
    assert not list(run.parent.glob(f".{run.name}.*"))


def test_report_regenerates(capsys, trained_run):
    run = trained_run[2]
    (run / "report.html").unlink()
    (run / "report.md").unlink()
    code, out, err = run_cli(capsys, "report", run)
    assert code == EXIT_OK, err
    assert (run / "report.html").is_file() and (run / "report.md").is_file()
    assert "wrote" in out


def test_similarity_of_two_texts(capsys, model_dir, trained_run):
    code, out, err = run_cli(capsys, "similarity", trained_run[2] / "model", "a man is playing a flute",
                             "a man plays the guitar")
    assert code == EXIT_OK, err
    assert re.fullmatch(r"\d\.\d / 5  \(cosine -?\d\.\d{3}\)\n", out), out

    code, out, err = run_cli(capsys, "similarity", model_dir, "a dog", "a cat")  # no calibration yet
    assert code == EXIT_OK, err
    assert re.match(r"cosine -?\d\.\d{3}  \(no 0–5 calibration", out), out


def test_similarity_scores_a_pair_file(capsys, tmp_path, trained_run, data_dir):
    output = tmp_path / "out.csv"
    code, out, err = run_cli(capsys, "similarity", trained_run[2] / "model", "--pairs", data_dir / "test.tsv",
                             "-o", output)
    assert code == EXIT_OK, err
    assert out == ""
    with output.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == len(TRAIN_PAIRS)
    assert list(rows[0]) == ["sentence1", "sentence2", "cosine", "score_0_5"]
    assert rows[0]["sentence1"] == TRAIN_PAIRS[1][0]
    assert all(-1 <= float(row["cosine"]) <= 1 and 0 <= float(row["score_0_5"]) <= 5 for row in rows)

    code, out, err = run_cli(capsys, "similarity", trained_run[2] / "model", "--pairs", data_dir / "test.tsv",
                             "--quiet")
    assert code == EXIT_OK, err
    assert out.splitlines()[0] == "sentence1,sentence2,cosine,score_0_5"
    assert len(out.splitlines()) == len(TRAIN_PAIRS) + 1


def test_similarity_pair_file_errors(capsys, tmp_path, model_dir, data_dir):
    bad = tmp_path / "bad.tsv"
    bad.write_text("sentence1\tsentence2\n" + "a cat\t\n", encoding="utf-8")
    code, _, err = run_cli(capsys, "similarity", model_dir, "--pairs", bad)
    assert_one_line_error(code, err, f"{bad}, line 2: ", "empty sentence in column 'sentence2'")
    code, _, err = run_cli(capsys, "similarity", model_dir, "--pairs", data_dir / "test.tsv", "-o", tmp_path / "o.txt")
    assert_one_line_error(code, err, "o.txt", ".csv or .jsonl")
    assert not (tmp_path / "o.txt").exists()


def test_encode_writes_npy(capsys, tmp_path, model_dir):
    sentences = tmp_path / "sentences.txt"
    sentences.write_text("a man is playing a flute\n\na dog is running\nthe red car\n", encoding="utf-8")
    output = tmp_path / "out.npy"
    code, _, err = run_cli(capsys, "encode", model_dir, sentences, "-o", output, "--normalize", "--quiet")
    assert_one_line_error(code, err, f"{sentences}, line 2", "blank", "--allow-blank")  # never dropped silently
    code, out, err = run_cli(capsys, "encode", model_dir, sentences, "-o", output, "--normalize", "--quiet",
                             "--allow-blank")
    assert code == EXIT_OK, err
    embeddings = np.load(output)
    assert embeddings.shape == (4, 32)  # one row per line, the blank one included
    np.testing.assert_allclose(np.linalg.norm(embeddings, axis=1), 1.0, rtol=1e-4)
    assert str(output) in out

    code, _, err = run_cli(capsys, "encode", model_dir, sentences, "--quiet", "--allow-blank")
    assert code == EXIT_OK, err
    assert np.load(sentences.with_suffix(".npy")).shape == (4, 32)


def test_encode_bad_input(capsys, tmp_path, model_dir):
    missing = tmp_path / "missing.txt"
    code, _, err = run_cli(capsys, "encode", model_dir, missing)
    assert_one_line_error(code, err, str(missing), "no such file")
    empty = tmp_path / "empty.txt"
    empty.write_text("\n\n", encoding="utf-8")
    code, _, err = run_cli(capsys, "encode", model_dir, empty)
    assert_one_line_error(code, err, str(empty), "no sentences")
    binary = tmp_path / "binary.txt"
    binary.write_bytes(b"fine\n\xff\xfe broken\n")
    code, _, err = run_cli(capsys, "encode", model_dir, binary)
    assert_one_line_error(code, err, str(binary), "not UTF-8")
    assert not list(tmp_path.glob("*.npy"))


def test_calibrate_writes_calibration_into_the_model_folder(capsys, tmp_path, model_dir, data_dir):
    model = tmp_path / "model"
    shutil.copytree(model_dir, model)
    code, out, err = run_cli(capsys, "calibrate", model, "--data", data_dir / "dev.tsv", "--quiet")
    assert code == EXIT_OK, err
    assert (model / "calibration.json").is_file()
    assert f"calibrated on {len(TRAIN_PAIRS)} pairs" in out and "MAE" in out

    code, out, err = run_cli(capsys, "similarity", model, "a dog", "a cat")
    assert code == EXIT_OK, err
    assert re.fullmatch(r"\d\.\d / 5  \(cosine -?\d\.\d{3}\)\n", out), out

    copy = tmp_path / "calibrated-copy"
    code, _, err = run_cli(capsys, "calibrate", model_dir, "--data", data_dir / "dev.tsv", "--output", copy, "--quiet")
    assert code == EXIT_OK, err
    assert (copy / "calibration.json").is_file() and (copy / "modules.json").is_file()
    assert not (model_dir / "calibration.json").exists()


def test_calibrate_never_replaces_an_existing_output_unasked(capsys, tmp_path, model_dir, data_dir):
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "notes.txt").write_text("mine", encoding="utf-8")
    argv = ("calibrate", model_dir, "--data", data_dir / "dev.tsv", "--output", taken, "--quiet")
    code, _, err = run_cli(capsys, *argv)
    assert_one_line_error(code, err, str(taken), "already exists; pass --overwrite")
    assert sorted(path.name for path in taken.iterdir()) == ["notes.txt"]
    code, _, err = run_cli(capsys, *argv, "--overwrite")
    assert code == EXIT_OK, err
    assert (taken / "calibration.json").is_file() and not (taken / "notes.txt").exists()
    code, _, err = run_cli(capsys, "calibrate", taken, "--data", data_dir / "dev.tsv", "--output", taken / "inner")
    assert_one_line_error(code, err, str(taken / "inner"), "inside the model folder")
    model = tmp_path / "model"
    shutil.copytree(model_dir, model)
    code, _, err = run_cli(capsys, "calibrate", model, "--data", data_dir / "dev.tsv", "--output", model, "--quiet")
    assert code == EXIT_OK, err  # --output MODEL is the in-place write: only calibration.json is added
    assert (model / "calibration.json").is_file()


def test_calibrate_bad_data_leaves_the_model_alone(capsys, tmp_path, model_dir):
    model = tmp_path / "model"
    shutil.copytree(model_dir, model)
    bad = tmp_path / "bad.tsv"
    bad.write_text(HEADER + "a cat\ta dog\t-1\n", encoding="utf-8")
    code, _, err = run_cli(capsys, "calibrate", model, "--data", bad, "--quiet")
    assert_one_line_error(code, err, f"{bad}, line 2: ", "outside the declared range")
    assert not (model / "calibration.json").exists()


def test_compare_a_model_with_itself(capsys, model_dir, data_dir):
    code, out, err = run_cli(capsys, "compare", model_dir, model_dir, "--data", data_dir / "test.tsv", "--json",
                             "--bootstrap", "50", "--quiet")
    assert code == EXIT_OK, err
    result = json.loads(out)
    assert result["difference"] == 0.0
    assert result["p_value"] == pytest.approx(1.0)
    assert result["spearman_a"] == result["spearman_b"]
    assert result["n_pairs"] == len(TRAIN_PAIRS) and result["n_resamples"] == 50

    code, out, err = run_cli(capsys, "compare", model_dir, model_dir, "--data", data_dir / "test.tsv",
                             "--bootstrap", "50", "--quiet")
    assert code == EXIT_OK, err
    assert "A − B = +0.00" in out and "p = 1" in out


def test_train_from_scratch_with_cls_pooling(capsys, tmp_path, tiny_transformer_dir, data_dir):
    run = tmp_path / "cls-run"
    code, out, err = run_cli(capsys, "train", "--base-model", tiny_transformer_dir, "--pooling", "cls",
                             "--data", data_dir / "train.tsv", "--dev-data", data_dir / "dev.tsv",
                             "--batch-size", "4", "--output", run, "--quiet")
    assert code == EXIT_OK, err
    assert f"run folder: {run}" in out and "dev Spearman(cosine)" in out
    assert "test Spearman" not in out  # no --test-data: no test figures
    summary = json.loads((run / "summary.json").read_text())
    assert summary["recipe"] == "from scratch (cls pooling)"
    assert "test" not in summary
    pooling = json.loads((run / "model" / "1_Pooling" / "config.json").read_text())
    assert pooling["pooling_mode_cls_token"] is True
    assert pooling["pooling_mode_mean_tokens"] is False


# -- recipes, seeds and tuning without test ----------------------------------------------------------
def test_recipe_fills_unset_options_and_flags_override_it(capsys, tmp_path, model_dir, data_dir):
    from sentsim.training.recipes import CLASSIC

    run = tmp_path / "run"
    code, _out, err = run_cli(capsys, "train", "--base-model", model_dir, "--data", data_dir / "train.tsv",
                             "--dev-data", data_dir / "dev.tsv", "--recipe", "classic", "--batch-size", "4",
                             "--output", run, "--json")
    assert code == EXIT_OK, err
    config = json.loads((run / "config.json").read_text())
    assert config["batch_size"] == 4  # given on the command line
    assert config["learning_rate"] == CLASSIC["learning_rate"] and config["loss"] == CLASSIC["loss"]
    assert config["epochs"] == CLASSIC["epochs"]
    code, _out, err = run_cli(capsys, "train", "--recipe", "fancy", "--output", tmp_path / "x")
    assert code == EXIT_USAGE and "fancy" in err


def test_seeds_report_mean_and_spread(capsys, tmp_path, model_dir, data_dir):
    run = tmp_path / "seeds"
    code, out, err = run_cli(capsys, "train", "--base-model", model_dir, "--data", data_dir / "train.tsv",
                             "--dev-data", data_dir / "dev.tsv", "--test-data", data_dir / "test.tsv",
                             "--batch-size", "4", "--seeds", "2", "--seed", "7", "--output", run, "--json")
    assert code == EXIT_OK, err
    result = _strict_json(out)
    assert result["seeds"] == [7, 8] and len(result["runs"]) == 2
    tests = [entry["test_spearman_cosine"] for entry in result["runs"]]
    assert result["mean"]["test_spearman_cosine"] == pytest.approx(sum(tests) / 2, abs=1e-3)
    assert result["std"]["test_spearman_cosine"] == pytest.approx(abs(tests[0] - tests[1]) / 2 ** 0.5, abs=1e-3)
    assert (run / "seed-7" / "summary.json").is_file() and (run / "seed-8" / "model").is_dir()
    assert json.loads((run / "seeds.json").read_text())["runs"] == result["runs"]


def test_average_trains_several_seeds_and_averages_their_weights(capsys, tmp_path, model_dir, data_dir):
    run = tmp_path / "soup"
    common = ["train", "--base-model", model_dir, "--data", data_dir / "train.tsv", "--dev-data", data_dir / "dev.tsv",
              "--batch-size", "4", "--epochs", "2", "--seed", "7"]
    code, out, err = run_cli(capsys, *common, "--average", "2", "--output", run, "--json")
    assert code == EXIT_OK, err
    assert json.loads((run / "config.json").read_text())["average"] == 2
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert {record.get("run") for record in records} == {1, 2, "average"}
    steps = [record["step"] for record in records if record["kind"] == "train"]
    assert steps == sorted(steps) and len(steps) == len(set(steps)), "steps run on across the averaged runs"
    average = records[-1]
    assert average["run"] == "average" and average["kind"] == "eval"
    assert _strict_json(out)["dev_spearman_cosine"] == pytest.approx(average["spearman_cosine"], abs=1e-3)

    # The averaged model is the mean of the two single runs (seeds 7 and 8) it was made from.
    from sentsim import SentenceTransformer

    singles = []
    for seed in (7, 8):
        code, _out, err = run_cli(capsys, *common[:-1], str(seed), "--output", tmp_path / f"single-{seed}", "--json")
        assert code == EXIT_OK, err
        singles.append(SentenceTransformer(tmp_path / f"single-{seed}" / "model").state_dict())
    averaged = SentenceTransformer(run / "model").state_dict()
    name = "0.auto_model.encoder.layer.0.attention.self.query.weight"
    assert torch.allclose(averaged[name], (singles[0][name] + singles[1][name]) / 2, atol=1e-6)

    code, out, err = run_cli(capsys, *common, "--average", "2", "--seeds", "2", "--output", tmp_path / "soups",
                             "--json")
    assert code == EXIT_OK, err
    assert _strict_json(out)["seeds"] == [7, 9], "averaged models with different seeds share no run"
    code, _out, err = run_cli(capsys, *common, "--average", "0", "--output", tmp_path / "bad")
    assert code == EXIT_USAGE and "average" in err


def test_no_test_leaves_the_test_split_unread(capsys, tmp_path, model_dir, data_dir, monkeypatch):
    import sentsim.training.splits as splits_module

    read = []
    original = splits_module.load_pairs
    monkeypatch.setattr(splits_module, "load_pairs",
                        lambda data, **kw: read.append(kw["split"]) or original(data, **kw))
    run = tmp_path / "tuning"
    # An STSb folder has a test split that would be read; --no-test must leave it unread. (--no-test with
    # --test-data is a contradiction, refused: tests/test_cli_options.py.)
    code, _out, err = run_cli(capsys, "train", "--base-model", model_dir, "--data", stsb_folder(tmp_path / "stsb"),
                              "--batch-size", "4", "--no-test", "--output", run, "--quiet")
    assert code == EXIT_OK, err
    assert "test" not in read
    summary = json.loads((run / "summary.json").read_text())
    assert "test" not in summary and not (run / "predictions.jsonl").exists()
