"""Run by tests/test_torch_free.py inside a venv that has sentsim[onnx] and no torch (not a pytest module).

Usage: python torch_free_check.py MODEL_DIR EXPECTED_JSON
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np


def main(model_dir: str, expected_path: str) -> None:
    assert importlib.util.find_spec("torch") is None, "torch is importable in the torch-free venv"
    expected = json.loads(Path(expected_path).read_text(encoding="utf-8"))
    import sentsim
    from sentsim.data import PairDataset, ScoredPair
    from sentsim.errors import MissingDependencyError
    from sentsim.evaluation.evaluate import evaluate_pairs

    encoder = sentsim.OnnxSentenceEncoder(model_dir, file_name="model.onnx")
    embeddings = encoder.encode(expected["sentences"])
    difference = float(np.max(np.abs(embeddings - np.asarray(expected["embeddings"]))))
    assert difference < 1e-4, f"ONNX embeddings differ from torch by {difference}"
    cosines = encoder.pair_cosine(expected["sentences"][:2], expected["sentences"][2:4])
    assert cosines.shape == (2,) and np.all(np.abs(cosines) <= 1)
    pairs = [ScoredPair(a, b, score) for a, b, score in expected["pairs"]]
    result = evaluate_pairs(sentsim.OnnxSentenceEncoder(model_dir), PairDataset(pairs=pairs, source="tiny"))
    # Same file, same pairs: only a different onnxruntime build could move it, and not by a point.
    assert abs(result.spearman_cosine - expected["int8_spearman"]) < 1.0, result.spearman_cosine
    via_backend = sentsim.SentenceTransformer(model_dir, backend="onnx", model_kwargs={"file_name": "model.onnx"})
    assert isinstance(via_backend, sentsim.OnnxSentenceEncoder), type(via_backend)
    assert np.allclose(via_backend.encode(expected["sentences"]), embeddings, atol=1e-6)
    try:
        sentsim.SentenceTransformer(model_dir)
    except MissingDependencyError as error:
        assert "sentsim[torch]" in str(error)
    else:
        raise AssertionError("the torch model loaded without torch")
    check_st_calls(via_backend, expected["sentences"], embeddings)
    assert "torch" not in sys.modules
    check_cli(model_dir, expected["pairs"], result.spearman_cosine)
    print(json.dumps({"max_difference": difference, "spearman_cosine": result.spearman_cosine}))


def check_st_calls(encoder, sentences: list[str], embeddings: np.ndarray) -> None:
    """sentence-transformers' calls without torch: numpy arrays wherever torch would give tensors."""
    prompted = encoder.encode(sentences, prompt="query: ")
    assert prompted.shape == embeddings.shape and not np.allclose(prompted, embeddings)
    bits = encoder.encode(sentences, precision="ubinary")
    assert bits.dtype == np.uint8 and bits.shape == (len(sentences), (embeddings.shape[1] + 7) // 8)
    assert np.array_equal(bits, np.packbits(embeddings > 0, axis=-1))
    tokens = encoder.encode(sentences, output_value="token_embeddings")
    assert all(isinstance(row, np.ndarray) and row.shape[1] == embeddings.shape[1] for row in tokens)
    tensor = encoder.encode(sentences, convert_to_tensor=True)
    assert isinstance(tensor, np.ndarray) and np.allclose(tensor, embeddings, atol=1e-6)
    pool = encoder.start_multi_process_pool(["cpu"])  # standard multiprocessing here, no torch in the worker
    try:
        pooled = encoder.encode(sentences, pool=pool, chunk_size=2)
    finally:
        encoder.stop_multi_process_pool(pool)
    assert np.allclose(pooled, embeddings, atol=1e-5)
    matrix = encoder.similarity(embeddings, embeddings)
    unit = embeddings / np.linalg.norm(embeddings, axis=1, keepdims=True)
    assert isinstance(matrix, np.ndarray) and np.allclose(matrix, unit @ unit.T, atol=1e-5)
    from sentsim.evaluation import BinaryClassificationEvaluator, TripletEvaluator  # numpy only: no torch

    binary = BinaryClassificationEvaluator(sentences[:2], sentences[2:4], [1, 0], name="tiny")(encoder)
    assert set(binary) >= {"tiny_cosine_accuracy", "tiny_cosine_ap"} and 0 <= binary["tiny_cosine_ap"] <= 1
    triplets = TripletEvaluator(sentences[:2], sentences[:2], sentences[2:4])(encoder)
    assert triplets == {"cosine_accuracy": 1.0}  # a text is nearest itself
    from sentsim.evaluation import InformationRetrievalEvaluator

    retrieval = InformationRetrievalEvaluator({"q": sentences[0]}, {"d0": sentences[2], "d1": sentences[0]},
                                              {"q": {"d1"}}, accuracy_at_k=[1], precision_recall_at_k=[1])(encoder)
    assert retrieval["cosine_accuracy@1"] == 1.0  # the document that is the query itself comes first


def check_cli(model_dir: str, pairs: list, spearman: float) -> None:
    """``sentsim evaluate --backend onnx`` and ``similarity`` as a user runs them, in this venv."""
    import csv
    import subprocess
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "pairs.csv"
        with path.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(["sentence1", "sentence2", "score"])
            writer.writerows([(a, b, 5 * score) for a, b, score in pairs])
        evaluate = subprocess.run([sys.executable, "-m", "sentsim", "evaluate", model_dir, "--backend", "onnx",
                                   "--data", str(path), "--json", "--bootstrap", "0", "--quiet"],
                                  capture_output=True, text=True, check=False)
        assert evaluate.returncode == 0, evaluate.stderr
        assert abs(json.loads(evaluate.stdout)["spearman_cosine"] - spearman) < 1e-3, evaluate.stdout
        similarity = subprocess.run([sys.executable, "-m", "sentsim", "similarity", model_dir, pairs[0][0],
                                     pairs[0][1]], capture_output=True, text=True, check=False)
        assert similarity.returncode == 0 and "cosine" in similarity.stdout, similarity.stderr
        calibrated = Path(folder) / "calibrated"
        calibrate = subprocess.run([sys.executable, "-m", "sentsim", "calibrate", model_dir, "--backend", "onnx",
                                    "--data", str(path), "--output", str(calibrated), "--quiet"],
                                   capture_output=True, text=True, check=False)
        assert calibrate.returncode == 0 and (calibrated / "calibration.json").is_file(), calibrate.stderr
        scored = subprocess.run([sys.executable, "-m", "sentsim", "similarity", str(calibrated), pairs[0][0],
                                 pairs[0][1]], capture_output=True, text=True, check=False)
        assert scored.returncode == 0 and "/ 5" in scored.stdout, scored.stderr
        corpus = Path(folder) / "corpus.txt"
        corpus.write_text("\n".join([pairs[0][0], pairs[1][0], pairs[0][0]]) + "\n", encoding="utf-8")
        searched = subprocess.run([sys.executable, "-m", "sentsim", "search", model_dir, str(corpus), str(corpus),
                                   "-o", str(Path(folder) / "hits.jsonl"), "--top-k", "1"],
                                  capture_output=True, text=True, check=False)
        assert searched.returncode == 0, searched.stderr
        hits = [json.loads(line)["hits"][0] for line in (Path(folder) / "hits.jsonl").read_text().splitlines()]
        assert [hit["corpus_id"] for hit in hits] == [0, 1, 0]  # the tie between rows 0 and 2: the lower
        deduped = subprocess.run([sys.executable, "-m", "sentsim", "dedup", model_dir, str(corpus),
                                  "-o", str(Path(folder) / "dups.jsonl"), "--threshold", "0.999"],
                                 capture_output=True, text=True, check=False)
        assert deduped.returncode == 0, deduped.stderr
        found = [json.loads(line) for line in (Path(folder) / "dups.jsonl").read_text().splitlines()]
        assert [(pair["i"], pair["j"]) for pair in found] == [(0, 2)], found
        train = subprocess.run([sys.executable, "-m", "sentsim", "evaluate", model_dir, "--backend", "torch",
                                "--data", str(path)], capture_output=True, text=True, check=False)
        assert train.returncode == 2 and "sentsim[torch]" in train.stderr, train.stderr


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
