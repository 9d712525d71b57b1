"""``sentsim export`` and ``--backend onnx|auto`` on the commands that encode."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from sentsim.cli import EXIT_OK, EXIT_USAGE, main

from .conftest import TRAIN_PAIRS


@pytest.fixture(scope="module")
def exported(tiny_transformer_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from sentsim import SentenceTransformer

    folder = tmp_path_factory.mktemp("cli-onnx")
    saved = SentenceTransformer.from_transformer(tiny_transformer_dir, pooling="mean").save(folder / "model")
    assert main(["export", str(saved), "-o", str(folder / "exported"), "--quantize", "int8"]) == EXIT_OK
    return folder / "exported"


@pytest.fixture
def pair_file(tmp_path: Path) -> Path:
    path = tmp_path / "pairs.csv"
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["sentence1", "sentence2", "score"])
        writer.writerows([(a, b, 5 * score) for a, b, score in TRAIN_PAIRS])
    return path


def test_evaluate_with_each_backend(exported: Path, pair_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    results = {}
    for backend in ("torch", "onnx", "auto"):
        capsys.readouterr()
        code = main(["evaluate", str(exported), "--data", str(pair_file), "--backend", backend, "--json",
                     "--bootstrap", "0", "--quiet"])
        out, err = capsys.readouterr()
        assert code == EXIT_OK, err
        results[backend] = json.loads(out)["spearman_cosine"]
        assert ("backend: onnx int8" in err) == (backend != "torch"), err
    # auto runs the CPU's int8 file, like onnx; torch is fp32/bf16, so only closeness is expected.
    assert results["auto"] == results["onnx"]
    assert abs(results["onnx"] - results["torch"]) < 15


def test_encode_and_similarity_on_onnx(exported: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lines = tmp_path / "lines.txt"
    lines.write_text("a man is playing a flute\na dog is running\n")
    assert main(["encode", str(exported), str(lines), "--backend", "onnx", "--quiet"]) == EXIT_OK
    matrix = np.load(tmp_path / "lines.npy")
    assert matrix.shape == (2, 32) and matrix.dtype == np.float32
    capsys.readouterr()
    assert main(["similarity", str(exported), "a man is playing a flute", "a man plays a flute",
                 "--backend", "onnx"]) == EXIT_OK
    assert "cosine" in capsys.readouterr().out


def test_the_torch_backend_says_what_auto_means_here(exported: Path, pair_file: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    import torch

    from sentsim.cli.common import INT8_MEASURED_ISAS
    from sentsim.environment import onnx_isa
    from sentsim.inference.forward import precision_reason, resolve_precision

    cpu = torch.device("cpu")
    argv = ["evaluate", str(exported), "--data", str(pair_file), "--backend", "torch", "--device", "cpu", "--json",
            "--bootstrap", "0", "--quiet"]
    capsys.readouterr()
    assert main(argv) == EXIT_OK
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("backend:")]
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"backend: torch {resolve_precision('auto', cpu)} ({precision_reason('auto', cpu)}")
    hint = f"`sentsim export {exported} -o DIR --quantize int8`"
    assert (hint in lines[0]) == (onnx_isa() in INT8_MEASURED_ISAS), lines[0]
    # An explicit --dtype is what was asked for: nothing to explain.
    assert main([*argv, "--dtype", "fp32"]) == EXIT_OK
    assert "backend:" not in capsys.readouterr().err


def test_int8_export_keeps_onnx_runtimes_preprocessing_advice_out_of_the_output(
        tiny_transformer_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    import logging

    from sentsim import SentenceTransformer
    from sentsim.export.quantize import quantize_dynamic_int8

    saved = SentenceTransformer.from_transformer(tiny_transformer_dir, pooling="mean").save(tmp_path / "model")
    with caplog.at_level(logging.WARNING):
        assert main(["export", str(saved), "-o", str(tmp_path / "exported"), "--quantize", "int8"]) == EXIT_OK
    assert (tmp_path / "exported" / "onnx" / "model_qint8_avx2.onnx").is_file()
    assert not [record for record in caplog.records if "pre-processing" in record.getMessage()]
    # Only that one message is dropped, and only while quantising: other root warnings still pass.
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        logging.warning("Please consider to run pre-processing before quantization.")
        quantize_dynamic_int8(tmp_path / "exported" / "onnx" / "model.onnx", tmp_path / "again.onnx")
    assert [record.getMessage() for record in caplog.records] == [
        "Please consider to run pre-processing before quantization."]


def test_export_refuses_an_existing_folder_and_onnx_needs_onnx_files(exported: Path, tmp_path: Path,
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "notes.txt").write_text("mine")
    assert main(["export", str(exported), "-o", str(tmp_path / "taken")]) == EXIT_USAGE
    assert "--overwrite" in capsys.readouterr().err
    # not a model folder: refused even with --overwrite; a data file is never turned into a model folder
    assert main(["export", str(exported), "-o", str(tmp_path / "taken"), "--overwrite"]) == EXIT_USAGE
    assert "is not a model folder" in capsys.readouterr().err
    assert main(["export", str(exported), "-o", str(tmp_path / "taken" / "notes.txt"), "--overwrite"]) == EXIT_USAGE
    assert "not a folder" in capsys.readouterr().err and (tmp_path / "taken" / "notes.txt").read_text() == "mine"
    lines = tmp_path / "lines.txt"
    lines.write_text("a dog\n")
    assert main(["encode", "all-MiniLM-L6-v2", str(lines), "--backend", "onnx"]) == EXIT_USAGE
    assert "sentsim export" in capsys.readouterr().err


def test_calibrate_an_onnx_model_in_place_and_into_a_copy(exported: Path, pair_file: Path, tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    import shutil

    from sentsim.inference.onnx_backend import OnnxSentenceEncoder

    copy = tmp_path / "calibrated"
    assert main(["calibrate", str(exported), "--backend", "onnx", "--data", str(pair_file), "--output", str(copy),
                 "--quiet"]) == EXIT_OK
    assert not (exported / "calibration.json").exists()  # --output leaves the source folder alone
    assert sorted(path.name for path in copy.iterdir()) == sorted(
        [path.name for path in exported.iterdir()] + ["calibration.json"])
    encoder = OnnxSentenceEncoder(copy)
    assert encoder.calibration is not None and 0 <= encoder.sts_score("a dog runs", "a dog is running") <= 5
    capsys.readouterr()
    assert main(["similarity", str(copy), "a dog runs", "a dog is running", "--backend", "onnx"]) == EXIT_OK
    assert "/ 5" in capsys.readouterr().out
    in_place = shutil.copytree(exported, tmp_path / "in-place")
    assert main(["calibrate", str(in_place), "--backend", "onnx", "--data", str(pair_file), "--quiet"]) == EXIT_OK
    assert (in_place / "calibration.json").read_text() == (copy / "calibration.json").read_text()
    with pytest.raises(ValueError, match="into itself"):
        encoder.save(copy / "inner")
    again = encoder.save_pretrained(tmp_path / "again")
    assert OnnxSentenceEncoder(again).calibration is not None


def test_export_and_calibrate_never_replace_their_own_input(exported: Path, pair_file: Path, tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    import shutil

    model = shutil.copytree(exported, tmp_path / "work" / "model")
    files = sorted(path.name for path in model.iterdir())
    for argv in (["export", str(model), "-o", str(model), "--overwrite"],
                 ["export", str(model), "-o", str(tmp_path / "work"), "--overwrite"],
                 ["calibrate", str(model), "--data", str(pair_file), "--output", str(pair_file.parent), "--overwrite"]):
        capsys.readouterr()
        assert main(argv) == EXIT_USAGE
        assert "would replace it" in capsys.readouterr().err
    assert sorted(path.name for path in model.iterdir()) == files and pair_file.is_file()
