"""The light install: ``pip install "sentsim[onnx]"`` in a venv without torch encodes, scores and evaluates.

The venv is cached in ``.ci/.torch-free-venv`` (ignored), keyed by the base and ``onnx`` dependencies; sentsim is
installed editable there, so source changes need no reinstall. The model is the tiny test BERT,
exported here in the main venv, where torch also computes the embeddings the venv must reproduce.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tomllib
import venv
from pathlib import Path

import numpy as np
import pytest

from .conftest import REPO

VENV = REPO / ".ci" / ".torch-free-venv"
SENTENCES = ["a man is playing a flute", "a man is playing a guitar", "a dog is running in the park",
             "a plane is taking off"]
PAIRS = [(SENTENCES[0], SENTENCES[1], 0.8), (SENTENCES[2], SENTENCES[3], 0.0), (SENTENCES[0], SENTENCES[3], 0.1),
         (SENTENCES[1], SENTENCES[2], 0.2)]


def torch_free_python() -> Path:
    """The venv's python, (re)built when pyproject.toml changed; fails the test if pip pulls torch."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    # Keyed by what this venv installs (base + onnx extra), not by the whole file: other extras change often.
    wanted = [project["dependencies"], project["optional-dependencies"]["onnx"], sys.version]
    stamp = hashlib.sha256(json.dumps(wanted).encode()).hexdigest()
    python = VENV / "bin" / "python"
    if python.is_file() and (VENV / "sentsim-stamp").is_file() and (VENV / "sentsim-stamp").read_text() == stamp:
        return python
    shutil.rmtree(VENV, ignore_errors=True)
    venv.EnvBuilder(with_pip=True, clear=True).create(VENV)
    subprocess.run([str(python), "-m", "pip", "install", "-q", "-e", f"{REPO}[onnx]"], check=True, timeout=600)
    (VENV / "sentsim-stamp").write_text(stamp)
    return python


@pytest.mark.skipif(sys.platform == "win32", reason="venv layout differs on Windows")
def test_onnx_backend_runs_without_torch(tiny_transformer_dir: Path, tmp_path: Path) -> None:
    from sentsim import OnnxSentenceEncoder, SentenceTransformer, export_model
    from sentsim.data import PairDataset, ScoredPair
    from sentsim.evaluation.evaluate import evaluate_pairs
    from sentsim.inference.encode import encode

    saved = SentenceTransformer.from_transformer(tiny_transformer_dir, pooling="mean").save(tmp_path / "model")
    exported = export_model(saved, tmp_path / "exported", quantize="int8")
    int8 = evaluate_pairs(OnnxSentenceEncoder(exported), PairDataset(
        pairs=[ScoredPair(*pair) for pair in PAIRS], source="tiny")).spearman_cosine
    expected = {"sentences": SENTENCES, "pairs": PAIRS, "int8_spearman": int8,
                "embeddings": np.asarray(encode(SentenceTransformer(exported), SENTENCES, dtype="fp32")).tolist()}
    (tmp_path / "expected.json").write_text(json.dumps(expected))
    python = torch_free_python()
    environment = {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "VIRTUAL_ENV")}
    completed = subprocess.run([str(python), str(REPO / "tests" / "torch_free_check.py"), str(exported),
                                str(tmp_path / "expected.json")], capture_output=True, text=True, timeout=300,
                               env=environment, check=False)
    assert completed.returncode == 0, completed.stderr[-3000:]
    report = json.loads(completed.stdout.strip().splitlines()[-1])
    assert report["max_difference"] < 1e-4
