"""sentence-transformers' smaller model calls on both encoders: the dimension encode returns (truncate_dim
included), truncate_embeddings blocks, and its evaluators run through model.evaluate."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy.stats import spearmanr

PAIRS = [("a man is playing a flute", "a man plays the flute", 4.6), ("a dog is running", "a cat sleeps", 0.8),
         ("the red car", "a red car", 4.2), ("two children play", "a woman is eating", 0.2),
         ("a plane is taking off", "an air plane is taking off", 5.0)]


@pytest.fixture(scope="module")
def encoders(tiny_transformer_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    from sentsim import SentenceTransformer
    from sentsim.export.onnx_export import export_model

    folder = tmp_path_factory.mktemp("st-calls")
    torch_model = SentenceTransformer.from_transformer(tiny_transformer_dir, pooling="mean")
    saved = torch_model.save(folder / "model")
    exported = export_model(saved, folder / "exported")
    return {"torch": SentenceTransformer(saved), "onnx": SentenceTransformer(exported, backend="onnx")}


@pytest.mark.parametrize("backend", ["torch", "onnx"])
def test_the_dimension_follows_truncate_dim_inside_and_after_the_block(encoders, backend: str) -> None:
    model = encoders[backend]
    full = model.get_embedding_dimension()
    assert full == model.get_sentence_embedding_dimension() == model.encode(["a"]).shape[1]
    for context in (model.truncate_embeddings, model.truncate_sentence_embeddings):
        with context(4):
            assert model.get_embedding_dimension() == 4 and model.encode(["a", "b"]).shape == (2, 4)
        assert model.get_embedding_dimension() == full and model.truncate_dim is None
    with model.truncate_embeddings(full + 100):  # larger than the model: the model's size
        assert model.get_embedding_dimension() == full
    with pytest.raises(ValueError, match="positive int"), model.truncate_embeddings(0):
        pass
    with pytest.raises(RuntimeError), model.truncate_embeddings(2):
        raise RuntimeError("an error inside the block")
    assert model.truncate_dim is None  # restored even so


@pytest.mark.parametrize("backend", ["torch", "onnx"])
def test_sentence_transformers_evaluators_run_through_evaluate(encoders, backend: str, tmp_path: Path) -> None:
    evaluation = pytest.importorskip("sentence_transformers.evaluation")
    model = encoders[backend]
    first, second, gold = (list(column) for column in zip(*PAIRS, strict=True))
    evaluator = evaluation.EmbeddingSimilarityEvaluator(first, second, gold, name="tiny")
    results = model.evaluate(evaluator, output_path=str(tmp_path / "out"))
    a, b = model.encode(first, normalize_embeddings=True), model.encode(second, normalize_embeddings=True)
    expected = spearmanr(np.sum(a * b, axis=1), gold).statistic
    assert results["tiny_spearman_cosine"] == pytest.approx(expected, abs=1e-6)
    assert (tmp_path / "out").is_dir()
    assert model.model_card_data.evaluations[-1]["metrics"] == results


def test_the_torch_model_exposes_its_transformers_model(encoders) -> None:
    import torch

    model = encoders["torch"]
    assert model.transformers_model is model.transformer.auto_model
    assert model.config.hidden_size == model.get_embedding_dimension() and model.dtype == torch.float32
