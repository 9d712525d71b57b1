"""The ``sentsim`` command on a tiny random model: bad input and usage errors (happy paths: test_cli_commands.py)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from sentsim.cli import EXIT_OK

from .cli_support import (
    GOOD_ROW,
    HEADER,
    assert_one_line_error,
    no_leftovers,
    pair_file,
    run_cli,
)
from .conftest import REPO, TRAIN_PAIRS

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


def test_evaluate_reports_a_threshold_classifier_for_two_valued_gold_scores(capsys, tmp_path, model_dir, data_dir):
    """A paraphrase set's 0/1 labels: the correlations as for any set, and the best one-threshold classifier."""
    import numpy as np

    from sentsim import SentenceTransformer
    from sentsim.evaluation.binary_classification import threshold_metrics

    rows = [row.split("\t") for row in (data_dir / "test.tsv").read_text(encoding="utf-8").splitlines()[1:]]
    labelled = tmp_path / "paraphrases.tsv"
    labelled.write_text("sentence1\tsentence2\tlabel\n" + "".join(
        f"{a}\t{b}\t{int(float(score) >= 2.5)}\n" for a, b, score in rows), encoding="utf-8")
    options = ("--score-column", "label", "--score-range", "0", "1", "--bootstrap", "0", "--quiet")
    code, out, err = run_cli(capsys, "evaluate", model_dir, "--data", labelled, "--json", *options)
    assert code == EXIT_OK, err
    binary = json.loads(out)["binary"]
    model = SentenceTransformer(str(model_dir))
    a, b = (model.encode([row[side] for row in rows], convert_to_numpy=True) for side in (0, 1))
    cosines = np.sum(a * b, axis=1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    expected = threshold_metrics(cosines, np.array([int(float(row[2]) >= 2.5) for row in rows]))
    assert binary["cosine"]["f1"] == pytest.approx(100 * expected["f1"], abs=1e-3)
    assert binary["cosine"]["accuracy_threshold"] == pytest.approx(expected["accuracy_threshold"], abs=1e-3)
    assert set(binary) == {"cosine", "dot", "euclidean", "manhattan"}
    code, out, err = run_cli(capsys, "evaluate", model_dir, "--data", labelled, *options)
    assert code == EXIT_OK and "gold scores take two values (0, 1 = alike)" in out
    assert out.splitlines()[-4].split()[0] == "cosine" and len(out.splitlines()[-4].split()) == 9
    code, out, err = run_cli(capsys, "evaluate", model_dir, "--data", data_dir / "test.tsv", "--json", "--quiet")
    assert code == EXIT_OK and "binary" not in json.loads(out)  # graded scores: no classifier


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
    assert_one_line_error(code, err, str(folder), "has no sts-test.csv", "Hugging Face dataset folder",
                           ".csv, .tsv, .txt, .jsonl or .parquet file")


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
    path = pair_file(tmp_path / "one.tsv", TRAIN_PAIRS[:1])
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




def test_constant_gold_scores_are_bad_input(capsys, tmp_path, model_dir):
    # Constant gold scores make every correlation undefined: said up front, before any model loads.
    path = pair_file(tmp_path / "constant.tsv", [(a, b, 0.6) for a, b, _ in TRAIN_PAIRS[:4]])
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
    (["train", "--lr", "inf"], "must be a finite number, not inf"),
    (["train", "--max-grad-norm", "nan"], "must be a finite number, not nan"),
    (["train", "--seed", "-1"], "a seed is between 0 and 4294967295, not -1"),
    (["evaluate", "m", "--seed", "4294967296"], "a seed is between 0 and 4294967295"),
    (["compare", "a", "b", "--seed", "x"], "a seed is a whole number, not 'x'"),
], ids=["no-command", "unknown-command", "no-model", "no-file", "one-model", "bad-int", "bad-split", "bad-option",
        "inf-lr", "nan-clip", "negative-seed", "huge-seed", "text-seed"])
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


@pytest.mark.parametrize(("error", "code", "words"), [
    (PermissionError(13, "Permission denied", "/runs/x"), 2, "error: /runs/x: Permission denied"),
    (OSError(28, "No space left on device", "/runs/x/model.safetensors"), 1, "No space left on device"),
    (OSError(30, "Read-only file system", "/mnt/ro"), 2, "Read-only file system"),
    (RuntimeError("Symlink loop from '/tmp/L1'"), 2, "loops through symbolic links"),
])
def test_unwritable_paths_and_link_loops_are_one_line_errors(capsys, monkeypatch, error, code, words):
    """Whatever command meets them: a permission, a full disk, a link loop give one line, no traceback."""
    from sentsim.cli import parser as parser_module

    def failing(args):
        raise error

    monkeypatch.setitem(parser_module.COMMANDS, "report", failing)
    status, _, err = run_cli(capsys, "report", "somewhere")
    assert status == code and err.startswith("error: ") and words in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_a_symlink_loop_as_input_is_a_usage_error(capsys, tmp_path, model_dir):
    (tmp_path / "L1").symlink_to(tmp_path / "L2")
    (tmp_path / "L2").symlink_to(tmp_path / "L1")
    for argv in (("encode", model_dir, tmp_path / "L1"), ("evaluate", model_dir, "--data", tmp_path / "L1")):
        code, _, err = run_cli(capsys, *argv)
        assert code == 2 and err.startswith("error: ") and "Traceback" not in err, err
