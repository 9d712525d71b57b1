"""The ``sentsim`` command on a tiny random model: every command's happy path, recipes, seeds and tuning."""

from __future__ import annotations

import csv
import json
import re
import shutil

import numpy as np
import pytest
import torch

from sentsim.cli import EXIT_OK, EXIT_USAGE

from .cli_support import (
    HEADER,
    assert_one_line_error,
    run_cli,
    strict_json,
    stsb_folder,
)
from .conftest import TRAIN_PAIRS


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


def test_a_run_folder_given_as_a_model_names_its_model(capsys, trained_run, data_dir):
    run = trained_run[2]
    code, _, err = run_cli(capsys, "evaluate", run, "--data", data_dir / "test.tsv")
    assert_one_line_error(code, err, "is a training run folder", str(run / "model"))


def test_report_never_writes_over_a_folder_train_did_not_write(capsys, tmp_path):
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "report.md").write_text("my report")
    (folder / "summary.json").write_text("{}")
    code, _, err = run_cli(capsys, "report", folder)
    assert_one_line_error(code, err, str(folder), "not a run folder")
    assert (folder / "report.md").read_text() == "my report"


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
    card = (model / "README.md").read_text(encoding="utf-8")  # the card's 0–5 section follows the new map
    assert "No `calibration.json`" not in card and f"fitted on {len(TRAIN_PAIRS)} pairs of " in card
    assert "dev.tsv" in card and card.count("## 0–5 scores") == 1 and "## Usage" in card

    code, out, err = run_cli(capsys, "similarity", model, "a dog", "a cat")
    assert code == EXIT_OK, err
    assert re.fullmatch(r"\d\.\d / 5  \(cosine -?\d\.\d{3}\)\n", out), out
    fitted = (model / "calibration.json").read_text()
    code, _, err = run_cli(capsys, "calibrate", model, "--data", data_dir / "test.tsv", "--quiet")
    assert_one_line_error(code, err, "calibration.json already exists", "--overwrite")  # never replaced unasked
    assert (model / "calibration.json").read_text() == fitted
    code, _, err = run_cli(capsys, "calibrate", model, "--data", data_dir / "test.tsv", "--overwrite", "--quiet")
    assert code == EXIT_OK, err
    card = (model / "README.md").read_text(encoding="utf-8")
    assert "test.tsv" in card and "dev.tsv" not in card and card.count("## 0–5 scores") == 1

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
    code, _, err = run_cli(capsys, *argv, "--overwrite")  # a folder that is not a model's: never written into
    assert_one_line_error(code, err, str(taken), "is not a model folder", "notes.txt")
    assert sorted(path.name for path in taken.iterdir()) == ["notes.txt"]
    shutil.copytree(model_dir, taken, dirs_exist_ok=True)  # now it is a model folder, with the user's note
    code, _, err = run_cli(capsys, *argv, "--overwrite")
    assert code == EXIT_OK, err
    # the model's files go in; the user's own file stays, as in sentence-transformers' save
    assert (taken / "calibration.json").is_file() and (taken / "notes.txt").read_text(encoding="utf-8") == "mine"
    for output in (tmp_path / "a-file.tsv", tmp_path):  # a file, or a folder holding the working folder
        if output.name == "a-file.tsv":
            output.write_text("data")
        code, _, err = run_cli(capsys, "calibrate", model_dir, "--data", data_dir / "dev.tsv", "--output", output,
                               "--overwrite", "--quiet")
        assert code == 2 and "error:" in err
    assert (tmp_path / "a-file.tsv").read_text() == "data"
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
    result = strict_json(out)
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
    assert strict_json(out)["dev_spearman_cosine"] == pytest.approx(average["spearman_cosine"], abs=1e-3)

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
    assert strict_json(out)["seeds"] == [7, 9], "averaged models with different seeds share no run"
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
