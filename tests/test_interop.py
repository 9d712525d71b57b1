"""Interop with sentence-transformers, both ways, and the bundled model's published zero-shot score.

sentence-transformers is a dev dependency: these tests are the only place it is imported.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from sentsim import SentenceTransformer
from sentsim.data import read_stsbenchmark
from sentsim.training import TrainConfig, train

pytestmark = pytest.mark.integration
sentence_transformers = pytest.importorskip("sentence_transformers")


@pytest.fixture(scope="module")
def stsb_sentences(stsb_dir: Path) -> list[str]:
    test = read_stsbenchmark(stsb_dir, "test")
    return test.sentences1[:50] + test.sentences2[:50]


@pytest.fixture(scope="module")
def bundled(bundled_model_dir: Path) -> SentenceTransformer:
    return SentenceTransformer("all-MiniLM-L6-v2")


def test_bundled_model_is_found_by_its_usual_names(bundled_model_dir: Path):
    for name in ("all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2"):
        model = SentenceTransformer(name)
        assert model.max_seq_length == 256 and model.embedding_dimension == 384
    assert not (bundled_model_dir / "2_Normalize").exists()  # the package ships without it


def test_bundled_model_matches_sentence_transformers(bundled, bundled_model_dir, stsb_sentences):
    reference = sentence_transformers.SentenceTransformer(str(bundled_model_dir), device="cpu")
    expected = reference.encode(stsb_sentences, batch_size=32, convert_to_numpy=True)
    ours = bundled.encode(stsb_sentences, batch_size=32, dtype="fp32")
    assert np.abs(ours - expected).max() <= 1e-5


def test_model_trained_by_sentsim_loads_in_sentence_transformers(bundled_model_dir, stsb_dir, stsb_sentences,
                                                                 tmp_path: Path):
    model = SentenceTransformer(bundled_model_dir)
    pairs = read_stsbenchmark(stsb_dir, "train").subset(64)
    train(model, sentences_a=pairs.sentences1, sentences_b=pairs.sentences2, labels=pairs.scores,
          config=TrainConfig(batch_size=16, learning_rate=1e-4), quiet=True)
    folder = model.save(tmp_path / "trained")
    loaded = sentence_transformers.SentenceTransformer(str(folder), device="cpu")
    assert loaded.max_seq_length == model.max_seq_length
    expected = loaded.encode(stsb_sentences, batch_size=32, convert_to_numpy=True)
    ours = model.encode(stsb_sentences, batch_size=32, dtype="fp32")
    assert np.abs(ours - expected).max() <= 1e-5
    # Training moved the weights: the comparison above is not between two copies of the base model.
    base = SentenceTransformer(bundled_model_dir).encode(stsb_sentences[:5], dtype="fp32")
    assert np.abs(base - ours[:5]).max() > 1e-3


def test_zero_shot_stsb_test_score_is_the_published_one(bundled, stsb_dir):
    from sentsim.evaluation.evaluate import evaluate_pairs

    test = read_stsbenchmark(stsb_dir, "test")
    exact = evaluate_pairs(bundled, test, dtype="fp32")
    assert exact.spearman_cosine == pytest.approx(82.03, abs=0.05)
    assert evaluate_pairs(bundled, test).spearman_cosine == pytest.approx(82.03, abs=0.05)


def _prompted_copy(bundled_model_dir: Path, folder: Path, *, include_prompt: bool) -> Path:
    """The bundled model saved by sentence-transformers with a query prompt and the include_prompt given."""
    reference = sentence_transformers.SentenceTransformer(str(bundled_model_dir), device="cpu",
                                                          prompts={"query": "query: "})
    reference[1].include_prompt = include_prompt
    reference.save(str(folder))
    return folder


@pytest.mark.parametrize("include_prompt", [False, True])
def test_a_pooling_that_leaves_the_prompt_out_gives_sentence_transformers_vectors(bundled_model_dir, stsb_sentences,
                                                                                 tmp_path: Path, include_prompt):
    folder = _prompted_copy(bundled_model_dir, tmp_path / "prompted", include_prompt=include_prompt)
    reference = sentence_transformers.SentenceTransformer(str(folder), device="cpu")
    ours = SentenceTransformer(folder)
    assert ours.pooling.include_prompt is include_prompt
    texts = stsb_sentences[:20]
    expected = reference.encode(texts, prompt_name="query", batch_size=8, convert_to_numpy=True)
    np.testing.assert_allclose(ours.encode(texts, prompt_name="query", batch_size=8, dtype="fp32"), expected,
                               atol=1e-5)
    tokens = reference.encode(texts[:3], prompt_name="query", output_value="token_embeddings")
    for got, want in zip(ours.encode(texts[:3], prompt_name="query", output_value="token_embeddings", dtype="fp32"),
                         tokens, strict=True):
        np.testing.assert_allclose(np.asarray(got), np.asarray(want), atol=1e-5)  # the encoder still sees the prompt
    plain = reference.encode(texts, batch_size=8, convert_to_numpy=True)  # no prompt: nothing is left out
    np.testing.assert_allclose(ours.encode(texts, batch_size=8, dtype="fp32"), plain, atol=1e-5)


def test_every_model_has_the_query_and_document_prompts_of_sentence_transformers(bundled_model_dir, tmp_path: Path):
    plain_reference = sentence_transformers.SentenceTransformer(str(bundled_model_dir), device="cpu")
    assert SentenceTransformer(bundled_model_dir).prompts == plain_reference.prompts == {"query": "", "document": ""}
    e5_style = {"query": "query: ", "passage": "passage: "}
    folder = SentenceTransformer(bundled_model_dir, prompts=e5_style).save(tmp_path / "e5-style")
    reference = sentence_transformers.SentenceTransformer(str(folder), device="cpu")
    ours = SentenceTransformer(folder)
    assert ours.prompts == reference.prompts
    texts = ["a man is playing a flute", "the red car"]
    for call in ("encode_query", "encode_document"):  # encode_document takes "document" (empty) before "passage"
        np.testing.assert_allclose(getattr(ours, call)(texts, dtype="fp32"), getattr(reference, call)(texts),
                                   atol=1e-5)
