"""CLI surfaces of the model-loading and temporary-folder safety checks: --allow-pickle and ``sentsim clean``."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from sentsim.cli import EXIT_OK, EXIT_USAGE, main
from sentsim.persistence.temporaries import MARKER_NAME


def _run(capsys, *argv: object) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main([str(arg) for arg in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def pickle_model(tiny_transformer_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny model saved by sentsim, its safetensors weights replaced by a torch pickle."""
    import torch
    from safetensors.torch import load_file

    from sentsim import SentenceTransformer

    folder = tmp_path_factory.mktemp("pickle") / "model"
    SentenceTransformer.from_transformer(tiny_transformer_dir).save(folder)
    torch.save(load_file(folder / "model.safetensors"), folder / "pytorch_model.bin")
    (folder / "model.safetensors").unlink()
    return folder


def test_encode_refuses_pickle_weights_unless_allow_pickle(capsys, pickle_model: Path, tmp_path: Path):
    sentences = tmp_path / "in.txt"
    sentences.write_text("a dog\na cat\n", encoding="utf-8")
    code, _, err = _run(capsys, "encode", pickle_model, sentences, "-o", tmp_path / "a.npy", "--quiet")
    assert code == EXIT_USAGE and len(err.strip().splitlines()) == 1
    assert "pytorch_model.bin" in err and "--allow-pickle" in err and "run code" in err
    code, _, err = _run(capsys, "encode", pickle_model, sentences, "-o", tmp_path / "b.npy", "--quiet",
                        "--allow-pickle")
    assert code == EXIT_OK, err
    assert (tmp_path / "b.npy").is_file()


def test_every_model_command_has_allow_pickle():
    from sentsim.cli.parser import build_parser

    parser = build_parser()
    commands = next(action for action in parser._actions if action.dest == "command").choices
    for name in ("train", "evaluate", "similarity", "encode", "calibrate", "compare"):
        assert "--allow-pickle" in commands[name].format_help(), name


def _leftover(parent: Path, name: str) -> Path:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    folder = parent / name
    folder.mkdir()
    (folder / "weights.bin").write_bytes(b"x" * 100)
    (folder / MARKER_NAME).write_text(json.dumps({"pid": child.pid, "started": None, "host": socket.gethostname()}))
    return folder


def test_clean_lists_asks_and_removes_only_leftovers_of_dead_processes(capsys, tmp_path: Path):
    leftover = _leftover(tmp_path, ".run.tmp-0000abcd")
    unmarked = tmp_path / ".other.tmp-0000ef01"
    unmarked.mkdir()
    (tmp_path / "run").mkdir()
    code, out, err = _run(capsys, "clean", tmp_path)  # stdin is not a terminal under pytest: no prompt
    assert code == EXIT_USAGE and "--yes" in err and str(leftover) in out
    assert leftover.is_dir()
    code, out, _ = _run(capsys, "clean", tmp_path, "--yes")
    assert code == EXIT_OK and "removed 1 folder" in out
    assert not leftover.exists() and unmarked.is_dir() and (tmp_path / "run").is_dir()
    code, out, _ = _run(capsys, "clean", tmp_path)
    assert code == EXIT_OK and "no leftover" in out
    code, _, err = _run(capsys, "clean", tmp_path / "missing")
    assert code == EXIT_USAGE and "no such folder" in err
    shutil.rmtree(unmarked)
