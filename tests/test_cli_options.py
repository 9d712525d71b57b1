"""Every ``sentsim`` option does what it says or is refused; help is torch-free and names every default."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

import numpy as np
import pytest

from sentsim.cli import EXIT_OK, build_parser
from sentsim.errors import ConfigError

from .cli_support import assert_one_line_error, no_leftovers, run_cli, stsb_folder
from .conftest import REPO, TRAIN_PAIRS

COMMANDS = ("train", "evaluate", "similarity", "encode", "calibrate", "compare", "report")
MODEL_COMMANDS = ("train", "evaluate", "similarity", "encode", "calibrate", "compare")


def _python(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=120, check=False,
                          cwd=REPO)


# -- torch-free help and import -------------------------------------------------------------------------
def test_import_sentsim_loads_no_torch():
    result = _python("-c", "import sentsim, sys; assert 'torch' not in sys.modules, 'torch imported'")
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("argv", [["--help"], ["train", "--help"]], ids=["top", "train"])
def test_python_m_sentsim_help_loads_no_torch(argv):
    result = _python("-X", "importtime", "-m", "sentsim", *argv)
    assert result.returncode == 0, result.stderr
    assert "usage: sentsim" in result.stdout
    imported = [line.rsplit("|", 1)[-1].strip() for line in result.stderr.splitlines() if "|" in line]
    assert "sentsim.cli" in imported  # the import log is really there
    assert not [name for name in imported if name == "torch" or name.startswith("torch.")]


def test_every_command_help_loads_no_torch():
    script = (
        "import sys\n"
        "from sentsim.cli import main\n"
        f"for command in {list(COMMANDS)!r}:\n"
        "    try:\n"
        "        main([command, '--help'])\n"
        "    except SystemExit as done:\n"
        "        assert done.code == 0, (command, done.code)\n"
        "    else:\n"
        "        raise AssertionError(command + ' --help did not exit')\n"
        "assert 'torch' not in sys.modules, 'torch imported'\n"
    )
    result = _python("-c", script)
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("usage: sentsim") == len(COMMANDS)


def test_python_m_sentsim_cli_runs():
    result = _python("-m", "sentsim.cli", "--help")
    assert result.returncode == 0, result.stderr
    assert "usage: sentsim" in result.stdout


# -- help names every default ---------------------------------------------------------------------------
def _subparsers() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


@pytest.mark.parametrize("command", COMMANDS)
def test_help_shows_every_default_and_explains_every_argument(command):
    parser = _subparsers()[command]
    formatter = parser._get_formatter()
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        assert action.help, f"{command} {action.dest} has no help text"
        shown = formatter._expand_help(action)
        if action.option_strings and not isinstance(action, argparse._StoreTrueAction):
            assert "default" in shown.lower(), f"{command} {action.option_strings[0]}: {shown!r}"


def test_train_help_gives_recipe_defaults_per_option():
    from sentsim.training.recipes import CLASSIC, DEFAULT

    text = _subparsers()["train"].format_help()
    flat = " ".join(text.split())
    for option, key in (("--batch-size", "batch_size"), ("--epochs", "epochs")):
        assert f"recipe default — default {DEFAULT[key]}, classic {CLASSIC[key]}" in flat, option
    assert f"default {DEFAULT['learning_rate']:g}, classic {CLASSIC['learning_rate']:g}" in flat
    for option in ("--weight-decay", "--evaluation-steps", "--patience", "--max-seq-length", "--average",
                   "--precision", "--device"):
        assert option in text


def test_device_option_on_every_model_command():
    for command in MODEL_COMMANDS:
        device = next(a for a in _subparsers()[command]._actions if "--device" in a.option_strings)
        assert device.choices == ("auto", "cpu", "cuda") and device.default == "auto", command


# -- pooling ------------------------------------------------------------------------------------------------
def test_pooling_choices_are_the_library_modes():
    from sentsim.cli.train import POOLING_CHOICES, pooling_mode
    from sentsim.models.pooling import POOLING_MODES, canonical_mode

    assert sorted(canonical_mode(choice) for choice in POOLING_CHOICES) == sorted(POOLING_MODES)
    assert pooling_mode("Last_Token") == "last-token" and pooling_mode("weightedmean") == "weighted-mean"


def test_mistyped_pooling_is_a_usage_error(capsys, tmp_path, model_dir, data_dir):
    run = tmp_path / "run"
    code, out, err = run_cli(capsys, "train", "--base-model", model_dir, "--pooling", "avg", "--data",
                             data_dir / "train.tsv", "--dev-data", data_dir / "dev.tsv", "--output", run)
    assert_one_line_error(code, err, "--pooling", "invalid choice: 'avg'")
    assert "ModelLoadError" not in err and out == ""
    no_leftovers(run)


# -- train ---------------------------------------------------------------------------------------------------
def test_train_normalize_without_pooling_adds_a_normalize_layer(capsys, tmp_path, model_dir, data_dir):
    from sentsim import SentenceTransformer
    from sentsim.models import Normalize

    run = tmp_path / "normalized"
    code, _out, err = run_cli(capsys, "train", "--base-model", model_dir, "--normalize", "--data",
                              data_dir / "train.tsv", "--dev-data", data_dir / "dev.tsv", "--epochs", "1",
                              "--batch-size", "4", "--output", run, "--json")
    assert code == EXIT_OK, err
    assert json.loads((run / "config.json").read_text())["normalize"] is True
    modules = json.loads((run / "model" / "modules.json").read_text())
    assert modules[-1]["type"].endswith("Normalize"), modules
    model = SentenceTransformer(run / "model")
    assert isinstance(list(model)[-1], Normalize)
    norms = np.linalg.norm(model.encode(["a dog is running", "a man eats food"]), axis=1)
    np.testing.assert_allclose(norms, 1.0, rtol=1e-4)
    assert not any(isinstance(module, Normalize) for module in SentenceTransformer(model_dir))  # base untouched


def test_train_no_test_with_test_data_is_refused(capsys, tmp_path, model_dir, data_dir):
    run = tmp_path / "contradiction"
    code, out, err = run_cli(capsys, "train", "--base-model", model_dir, "--data", data_dir / "train.tsv",
                             "--dev-data", data_dir / "dev.tsv", "--test-data", data_dir / "test.tsv", "--no-test",
                             "--output", run)
    assert_one_line_error(code, err, "--no-test", "--test-data")
    assert out == ""
    no_leftovers(run)


def test_train_records_the_resolved_device_the_dropout_masks_and_the_heap_choice(capsys, tmp_path, model_dir, data_dir):
    run = tmp_path / "on-cpu"
    code, _out, err = run_cli(capsys, "train", "--base-model", model_dir, "--data", data_dir / "train.tsv",
                              "--dev-data", data_dir / "dev.tsv", "--epochs", "1", "--batch-size", "4",
                              "--device", "cpu", "--torch-dropout", "--return-freed-memory",
                              "--max-forward-tokens", "12", "--output", run, "--json")
    assert code == EXIT_OK, err
    recorded = json.loads((run / "config.json").read_text())
    assert recorded["device"] == "cpu" and recorded["fast_dropout"] is False
    assert recorded["keep_freed_memory"] is False
    assert recorded["max_forward_tokens"] == 12


@pytest.mark.parametrize("value", ["0", "-5", "lots", "1.5"])
def test_train_refuses_a_bad_max_forward_tokens(capsys, tmp_path, model_dir, data_dir, value):
    run = tmp_path / "bad-chunks"
    code, out, err = run_cli(capsys, "train", "--base-model", model_dir, "--data", data_dir / "train.tsv",
                             "--max-forward-tokens", value, "--output", run)
    assert code == 2 and "--max-forward-tokens" in err and out == ""
    no_leftovers(run)


# -- evaluate / calibrate / compare: --split only with a folder --------------------------------------------
@pytest.mark.parametrize("command", ["evaluate", "calibrate", "compare"])
def test_split_with_a_pair_file_is_refused(capsys, tmp_path, model_dir, data_dir, command):
    models = [model_dir, model_dir] if command == "compare" else [model_dir]
    code, out, err = run_cli(capsys, command, *models, "--data", data_dir / "test.tsv", "--split", "dev", "--quiet")
    assert_one_line_error(code, err, "--split dev", "STSb folder", str(data_dir / "test.tsv"))
    assert out == ""
    assert not (model_dir / "calibration.json").exists()


def test_split_chooses_the_split_of_an_stsb_folder(capsys, tmp_path, model_dir):
    folder = stsb_folder(tmp_path / "stsb")
    results = {}
    for split in ("dev", "test"):
        code, out, err = run_cli(capsys, "evaluate", model_dir, "--data", folder, "--split", split, "--bootstrap",
                                 "0", "--json", "--quiet")
        assert code == EXIT_OK, err
        results[split] = json.loads(out)
        assert results[split]["n_pairs"] == len(TRAIN_PAIRS)
    assert "dev" in results["dev"]["data"] and "test" in results["test"]["data"]


# -- similarity ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_similarity_of_two_texts_writes_the_output_file(capsys, tmp_path, model_dir, suffix):
    output = tmp_path / f"one{suffix}"
    code, out, err = run_cli(capsys, "similarity", model_dir, "a dog is running", "a cat is eating", "-o", output)
    assert code == EXIT_OK, err
    assert out == "" and str(output) in err
    text = output.read_text(encoding="utf-8")
    if suffix == ".csv":
        header, row = text.splitlines()
        assert header == "sentence1,sentence2,cosine,score_0_5"
        first, second, cosine, score = row.split(",")
    else:
        record = json.loads(text)
        first, second, cosine, score = record["sentence1"], record["sentence2"], record["cosine"], record["score_0_5"]
        assert score is None  # no calibration
    assert (first, second) == ("a dog is running", "a cat is eating")
    assert -1 <= float(cosine) <= 1
    assert not list(tmp_path.glob(".*"))  # written atomically: no temporary file left


def test_similarity_of_two_texts_refuses_an_unknown_output_type(capsys, tmp_path, model_dir):
    output = tmp_path / "one.txt"
    code, _, err = run_cli(capsys, "similarity", model_dir, "a dog", "a cat", "-o", output)
    assert_one_line_error(code, err, "one.txt", ".csv or .jsonl")
    assert not output.exists()


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_similarity_of_two_texts_honours_precision(capsys, monkeypatch, model_dir, precision):
    import sentsim.inference.scoring as scoring

    seen = []
    original = scoring.encode_pairs

    def spy(*args, **options):
        seen.append(options.get("dtype"))
        return original(*args, **options)

    monkeypatch.setattr(scoring, "encode_pairs", spy)
    code, out, err = run_cli(capsys, "similarity", model_dir, "a dog", "a cat", "--precision", precision)
    assert code == EXIT_OK, err
    assert seen == [precision]
    assert out.startswith("cosine ")


# -- bf16 where it is emulated ---------------------------------------------------------------------------
def test_bf16_on_a_cpu_without_native_bf16_warns(capsys, monkeypatch, model_dir, data_dir):
    import sentsim.inference.forward as forward

    native = forward.native_bf16(forward.torch.device("cpu"))
    argv = ["evaluate", model_dir, "--data", data_dir / "test.tsv", "--bootstrap", "0", "--quiet", "--json",
            "--device", "cpu"]
    if native:  # this machine runs bf16 natively: no warning
        code, _out, err = run_cli(capsys, *argv, "--precision", "bf16")
        assert code == EXIT_OK, err
        assert "emulated" not in err
    monkeypatch.setattr(forward, "native_bf16", lambda device: False)
    code, out, err = run_cli(capsys, *argv, "--precision", "bf16")
    assert code == EXIT_OK, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("warning: bf16 is emulated on this cpu"), err
    assert json.loads(out)["n_pairs"] == len(TRAIN_PAIRS)
    code, _out, err = run_cli(capsys, *argv, "--precision", "fp32")
    assert code == EXIT_OK and "emulated" not in err


def test_search_and_dedup_warn_of_emulated_bf16_too(capsys, monkeypatch, tmp_path, model_dir):
    """Every command that encodes with --dtype bf16 says when this CPU only emulates it, search and dedup too."""
    import sentsim.inference.forward as forward

    monkeypatch.setattr(forward, "native_bf16", lambda device: False)
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("a man plays a flute\na man plays a guitar\na cat sleeps\n", encoding="utf-8")
    for argv in (("search", model_dir, corpus, corpus, "-o", tmp_path / "hits.jsonl"),
                 ("dedup", model_dir, corpus, "-o", tmp_path / "pairs.jsonl")):
        code, _out, err = run_cli(capsys, *argv, "--dtype", "bf16", "--device", "cpu", "--quiet")
        assert code == EXIT_OK, err
        warned = [line for line in err.splitlines() if line.startswith("warning: bf16 is emulated on this cpu")]
        assert len(warned) == 1, err


# -- the evaluator takes only keywords it knows ---------------------------------------------------------
def test_evaluator_refuses_unknown_keywords():
    from sentsim.evaluation.evaluators import EmbeddingSimilarityEvaluator

    pairs = ([a for a, _, _ in TRAIN_PAIRS], [b for _, b, _ in TRAIN_PAIRS], [s for _, _, s in TRAIN_PAIRS])
    with pytest.raises(TypeError, match="anything"):
        EmbeddingSimilarityEvaluator(*pairs, anything=1)
    # sentence-transformers' own constructor keywords are all accepted
    evaluator = EmbeddingSimilarityEvaluator(*pairs, batch_size=4, main_similarity="cosine",
                                             similarity_fn_names=["cosine"], name="sts-dev", show_progress_bar=False,
                                             write_csv=False, precision="float32", truncate_dim=16)
    assert evaluator.batch_size == 4 and evaluator.name == "sts-dev" and evaluator.truncate_dim == 16


# -- --device --------------------------------------------------------------------------------------------------
def test_resolve_device(monkeypatch):
    import torch

    from sentsim.environment import resolve_device

    assert resolve_device("cpu") == "cpu"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == "cpu"
    with pytest.raises(ConfigError, match="CUDA is not available"):
        resolve_device("cuda")
    with pytest.raises(ConfigError, match="device must be one of"):
        resolve_device("tpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_device("auto") == "cuda" and resolve_device("CUDA") == "cuda"


def test_cli_refuses_cuda_where_there_is_none(capsys, monkeypatch, model_dir, data_dir):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    code, out, err = run_cli(capsys, "evaluate", model_dir, "--data", data_dir / "test.tsv", "--device", "cuda")
    assert_one_line_error(code, err, "--device cuda", "CUDA is not available")
    assert out == ""
    code, _, err = run_cli(capsys, "evaluate", model_dir, "--device", "tpu")
    assert_one_line_error(code, err, "invalid choice: 'tpu'")


@pytest.mark.parametrize("command", ["evaluate", "similarity", "encode", "calibrate", "compare"])
def test_commands_load_the_model_on_the_chosen_device(capsys, monkeypatch, tmp_path, model_dir, data_dir, command):
    from sentsim.cli import common
    from sentsim.errors import SentsimError

    devices = []

    def load_model(name, *, device, **options):  # allow_pickle, backend
        devices.append(device)
        raise SentsimError("stop after loading")

    monkeypatch.setattr(common, "load_model", load_model)
    sentences = tmp_path / "sentences.txt"
    sentences.write_text("a dog\n", encoding="utf-8")
    argv = {"evaluate": [model_dir, "--data", data_dir / "test.tsv"],
            "similarity": [model_dir, "a dog", "a cat"],
            "encode": [model_dir, sentences],
            "calibrate": [model_dir, "--data", data_dir / "dev.tsv", "-o", tmp_path / "copy"],
            "compare": [model_dir, model_dir, "--data", data_dir / "test.tsv"]}[command]
    code, _, err = run_cli(capsys, command, *argv, "--device", "cpu", "--quiet")
    assert_one_line_error(code, err, "stop after loading")
    assert devices == ["cpu"]
    assert not (tmp_path / "copy").exists() and not list(tmp_path.glob("*.npy"))

