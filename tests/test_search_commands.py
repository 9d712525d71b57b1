"""The commands built on sentence-transformers-style retrieval: ``train --loss mnrl`` on an unscored
file, ``search`` and ``dedup`` (tiny model); the Python calls they mirror are in test_dropin.py."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .cli_support import run_cli
from .conftest import TRAIN_PAIRS

S1 = [a for a, _, _ in TRAIN_PAIRS]
S2 = [b for _, b, _ in TRAIN_PAIRS]


def test_train_mnrl_on_an_unscored_file(capsys, tiny_transformer_dir, tmp_path: Path):
    import json

    train = tmp_path / "nli.csv"
    train.write_text("anchor,positive\n" + "".join(f"{a},{b}\n" for a, b in zip(S1, S2, strict=True)))
    dev = tmp_path / "dev.csv"
    dev.write_text("sentence1,sentence2,score\n" + "".join(f"{a},{b},{s * 5}\n" for a, b, s in TRAIN_PAIRS))
    code, _, err = run_cli(capsys, "train", "--base-model", tiny_transformer_dir, "--pooling", "mean", "--data", train,
                         "--dev-data", dev, "--loss", "mnrl", "--batch-size", "4", "--epochs", "1", "--dtype", "fp32",
                         "--output", tmp_path / "run", "--quiet")
    assert code == 0, err
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["loss"] == "mnrl" and summary["steps"] == 3
    card = (tmp_path / "run" / "model" / "README.md").read_text()
    assert "library_name: sentence-transformers" in card and "## Base model scores" in card
    assert "calibration.json" in card and "sts_score" in card and "## Limitations" in card
    code, _, err = run_cli(capsys, "train", "--base-model", tiny_transformer_dir, "--pooling", "mean", "--data", dev,
                         "--dev-data", dev, "--loss", "mnrl", "--output", tmp_path / "run2", "--quiet")
    assert code == 2 and "header lacks columns 'anchor', 'positive'" in err and not (tmp_path / "run2").exists()


def test_search_and_dedup_commands(capsys, tiny_transformer_dir, tmp_path: Path):
    import json

    from sentsim import SentenceTransformer, util

    model_dir = SentenceTransformer.from_transformer(tiny_transformer_dir).save(tmp_path / "model")
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(S1 + S2 + [S1[0]]) + "\n")
    queries = tmp_path / "queries.txt"
    queries.write_text("\n".join(S1[:2]) + "\n")
    output = tmp_path / "hits.jsonl"
    code, _, err = run_cli(capsys, "search", model_dir, queries, corpus, "-o", output, "--top-k", "2",
                           "--dtype", "fp32")
    assert code == 0, err
    records = [json.loads(line) for line in output.read_text().splitlines()]
    model = SentenceTransformer(model_dir)
    expected = util.semantic_search(model.encode(S1[:2], dtype="fp32"), model.encode(S1 + S2 + [S1[0]], dtype="fp32"),
                                    top_k=2)
    assert [r["query"] for r in records] == S1[:2]
    for record, hits in zip(records, expected, strict=True):
        np.testing.assert_allclose([h["score"] for h in record["hits"]], [h["score"] for h in hits], atol=1e-5)
        assert all(h["text"] == (S1 + S2 + [S1[0]])[h["corpus_id"]] for h in record["hits"])
    code, _, err = run_cli(capsys, "search", model_dir, queries, corpus, "-o", output)
    assert code == 2 and "--force" in err
    dedup = tmp_path / "dups.jsonl"
    code, _, err = run_cli(capsys, "dedup", model_dir, corpus, "-o", dedup, "--threshold", "0.99999", "--dtype", "fp32")
    assert code == 0, err
    pairs = [json.loads(line) for line in dedup.read_text().splitlines()]
    assert {"score", "i", "j", "text_i", "text_j"} <= set(pairs[0])
    assert any(p["text_i"] == p["text_j"] == S1[0] for p in pairs)  # the repeated line is found
    # The JSON-lines embeddings `sentsim encode` writes are a corpus too (with their text beside them)
    encoded = tmp_path / "corpus.jsonl"
    code, _, err = run_cli(capsys, "encode", model_dir, corpus, "-o", encoded, "--dtype", "fp32")
    assert code == 0, err
    again = tmp_path / "hits-from-jsonl.jsonl"
    code, _, err = run_cli(capsys, "search", model_dir, queries, encoded, "--corpus-text", corpus, "-o", again,
                         "--top-k", "2", "--dtype", "fp32")
    assert code == 0, err
    assert [json.loads(line) for line in again.read_text().splitlines()] == records
    hits = tmp_path / "hits-as-corpus.jsonl"  # any other JSON lines: not taken for text
    code, _, err = run_cli(capsys, "search", model_dir, queries, output, "-o", hits)
    assert code == 2 and "line 1:" in err and "sentsim encode" in err and not hits.exists()
    code, _, err = run_cli(capsys, "search", model_dir, queries, corpus, "--corpus-text", corpus, "-o", hits)
    assert code == 2 and "leave --corpus-text out" in err
    gappy = tmp_path / "gappy.txt"
    gappy.write_text("a dog runs\n\nthe red car\n")
    code, _, err = run_cli(capsys, "dedup", model_dir, gappy, "-o", tmp_path / "gappy-pairs.jsonl")
    assert code == 2 and "--allow-blank" in err
    code, _, err = run_cli(capsys, "dedup", model_dir, gappy, "-o", tmp_path / "gappy-pairs.jsonl", "--allow-blank")
    assert code == 0, err


def test_search_and_dedup_refuse_outputs_that_would_fail_or_destroy_an_input(capsys, tiny_transformer_dir,
                                                                            tmp_path: Path):
    from sentsim import SentenceTransformer

    model_dir = SentenceTransformer.from_transformer(tiny_transformer_dir).save(tmp_path / "model")
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(S1 + S2) + "\n")
    before = corpus.read_text()
    for argv, message in (
        (("search", model_dir, corpus, corpus, "-o", corpus, "--force"), "is the input file"),
        (("dedup", model_dir, corpus, "-o", corpus, "--force"), "is the input file"),
        (("search", model_dir, corpus, corpus, "-o", tmp_path, "--force"), "hits.jsonl"),
        (("dedup", model_dir, corpus, "-o", tmp_path / "missing" / "pairs.jsonl"), "does not exist"),
    ):
        code, _, err = run_cli(capsys, *argv, "--quiet")
        assert code == 2 and message in err and "Traceback" not in err, err
    assert corpus.read_text() == before and sorted(path.name for path in tmp_path.iterdir()) == ["corpus.txt", "model"]


def test_a_jsonl_corpus_follows_its_ids_and_swapped_arguments_are_refused(capsys, tiny_transformer_dir, tmp_path):
    import json

    from sentsim import SentenceTransformer

    model_dir = SentenceTransformer.from_transformer(tiny_transformer_dir).save(tmp_path / "model")
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(S1 + S2) + "\n")
    queries = tmp_path / "queries.txt"
    queries.write_text(S1[0] + "\n")
    encoded = tmp_path / "corpus.jsonl"
    assert run_cli(capsys, "encode", model_dir, corpus, "-o", encoded, "--dtype", "fp32")[0] == 0
    lines = encoded.read_text().splitlines()
    shuffled = tmp_path / "shuffled.jsonl"
    shuffled.write_text("\n".join(lines[::-1]) + "\n")  # rows reordered: the ids still say which line is which
    hits = tmp_path / "hits.jsonl"
    code, _, err = run_cli(capsys, "search", model_dir, queries, shuffled, "--corpus-text", corpus, "-o", hits,
                         "--top-k", "1", "--dtype", "fp32")
    assert code == 0, err
    assert json.loads(hits.read_text())["hits"][0]["text"] == S1[0]
    dropped = tmp_path / "dropped.jsonl"
    dropped.write_text("\n".join(lines[1:]) + "\n")
    code, _, err = run_cli(capsys, "search", model_dir, queries, dropped, "-o", tmp_path / "h2.jsonl")
    assert code == 2 and "line numbers 1 to" in err
    code, _, err = run_cli(capsys, "search", model_dir, encoded, corpus, "-o", tmp_path / "h3.jsonl")
    assert code == 2 and "swap places" in err
