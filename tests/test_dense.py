"""Dense (linear + activation after pooling, as LaBSE and distiluse end): saved, loaded, encoded and trained,
and read both ways with sentence-transformers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from sentsim.errors import ModelLoadError

TEXTS = ["a man is playing a flute", "a dog is running in the park", "two children are eating food"]


@pytest.fixture
def dense_model(tiny_transformer_dir: Path):
    from sentsim import SentenceTransformer
    from sentsim.models import Dense, Normalize, Pooling, Transformer

    transformer = Transformer(tiny_transformer_dir, local_files_only=True)
    torch.manual_seed(1)
    dense = Dense(transformer.embedding_dimension, 16)
    return SentenceTransformer(modules=[transformer, Pooling(transformer.embedding_dimension, modes="mean"), dense,
                                        Normalize()])


def test_a_dense_model_encodes_saves_and_loads_with_its_layer(dense_model, tmp_path: Path) -> None:
    from sentsim import SentenceTransformer

    assert dense_model.get_embedding_dimension() == 16
    vectors = dense_model.encode(TEXTS, dtype="fp32")
    assert vectors.shape == (3, 16) and np.allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-5)
    with torch.no_grad():  # by hand: mean pooling, then tanh(linear), then unit length
        pooled = torch.as_tensor(SentenceTransformer(modules=list(dense_model)[:2]).encode(TEXTS, dtype="fp32"))
        by_hand = torch.nn.functional.normalize(torch.tanh(dense_model[2].linear(pooled)), dim=1)
    np.testing.assert_allclose(vectors, by_hand.numpy(), atol=1e-5)
    folder = dense_model.save(tmp_path / "model")
    assert (folder / "2_Dense" / "model.safetensors").is_file()
    np.testing.assert_allclose(SentenceTransformer(folder).encode(TEXTS, dtype="fp32"), vectors, atol=1e-6)


def test_sentence_transformers_reads_our_dense_folders_and_we_read_theirs(dense_model, tmp_path: Path) -> None:
    st = pytest.importorskip("sentence_transformers")
    from sentsim import SentenceTransformer

    ours = dense_model.save(tmp_path / "ours")
    expected = dense_model.encode(TEXTS, dtype="fp32")
    theirs = st.SentenceTransformer(str(ours), device="cpu")
    np.testing.assert_allclose(theirs.encode(TEXTS), expected, atol=1e-5)
    theirs.save(str(tmp_path / "theirs"))
    np.testing.assert_allclose(SentenceTransformer(tmp_path / "theirs").encode(TEXTS, dtype="fp32"), expected,
                               atol=1e-5)
    theirs.save(str(tmp_path / "pickled"), safe_serialization=False)  # as LaBSE and distiluse ship theirs
    dense_folder = next((tmp_path / "pickled").glob("*_Dense"))
    assert (dense_folder / "pytorch_model.bin").is_file()
    with pytest.raises(ModelLoadError, match="allow_pickle"):
        SentenceTransformer(tmp_path / "pickled")
    loaded = SentenceTransformer(tmp_path / "pickled", allow_pickle=True)
    np.testing.assert_allclose(loaded.encode(TEXTS, dtype="fp32"), expected, atol=1e-5)


def test_a_dense_config_naming_other_code_or_not_fitting_is_refused(dense_model, tmp_path: Path) -> None:
    import json

    from sentsim import SentenceTransformer

    folder = dense_model.save(tmp_path / "model")
    config_path = folder / "2_Dense" / "config.json"
    config = json.loads(config_path.read_text())
    assert config == {"in_features": 32, "out_features": 16, "bias": True,
                      "activation_function": "torch.nn.modules.activation.Tanh"}
    config_path.write_text(json.dumps({**config, "activation_function": "os.system"}))
    with pytest.raises(ModelLoadError, match=r"'os\.system' is not supported by sentsim \(torch's own: "):
        SentenceTransformer(folder)
    config_path.write_text(json.dumps({**config, "out_features": 8}))
    with pytest.raises(ModelLoadError, match="do not fit its config"):
        SentenceTransformer(folder)


def test_a_dense_model_trains_through_its_layer(dense_model) -> None:
    from sentsim.training.config import TrainConfig
    from sentsim.training.loop import train

    before = dense_model[2].linear.weight.detach().clone()
    train(dense_model, sentences_a=TEXTS * 2, sentences_b=TEXTS[::-1] * 2, labels=[0.9, 0.1, 0.5, 0.8, 0.2, 0.4],
          config=TrainConfig(batch_size=2, epochs=1, dtype="fp32", learning_rate=1e-2), quiet=True)
    assert not torch.equal(dense_model[2].linear.weight, before)


@pytest.mark.parametrize("activation", ["Tanh", "GELU", "Identity"])
def test_the_onnx_backend_runs_the_dense_layer_in_numpy(dense_model, tmp_path: Path, activation: str) -> None:
    pytest.importorskip("onnx")
    from sentsim import SentenceTransformer
    from sentsim.export.onnx_export import export_model

    dense_model[2].activation_function = getattr(torch.nn, activation)()
    expected = dense_model.encode(TEXTS, dtype="fp32")
    exported = export_model(dense_model.save(tmp_path / "model"), tmp_path / "exported")
    onnx = SentenceTransformer(exported, backend="onnx")
    assert onnx.get_embedding_dimension() == 16
    np.testing.assert_allclose(onnx.encode(TEXTS), expected, atol=1e-5)


def test_the_onnx_backend_refuses_dense_weights_it_cannot_read_safely(dense_model, tmp_path: Path) -> None:
    import json

    from sentsim.inference.onnx_head import load_dense_layers

    dense_folder = dense_model.save(tmp_path / "model") / "2_Dense"
    (dense_folder / "model.safetensors").rename(dense_folder / "pytorch_model.bin")
    with pytest.raises(ModelLoadError, match=r"not in model\.safetensors.*sentsim export"):
        load_dense_layers([dense_folder])
    config = json.loads((dense_folder / "config.json").read_text())
    (dense_folder / "config.json").write_text(json.dumps({**config, "activation_function": "os.system"}))
    with pytest.raises(ModelLoadError, match=r"'os\.system' is not supported by the ONNX backend"):
        load_dense_layers([dense_folder])


def test_the_server_embeds_through_the_dense_layer(dense_model) -> None:
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from sentsim.serve.app import create_app
    from sentsim.serve.engine import TorchEngine
    from sentsim.serve.limits import ServeSettings

    with TestClient(create_app(ServeSettings(), TorchEngine(dense_model, name="dense"))) as client:
        served = np.array(client.post("/embed", json={"inputs": TEXTS}).json())
    assert served.shape == (3, 16)
    np.testing.assert_allclose(served, dense_model.encode(TEXTS, dtype="fp32"), atol=2e-3)


def test_both_backends_load_the_same_activations() -> None:
    from sentsim.inference.onnx_head import ACTIVATIONS as NUMPY_ACTIVATIONS
    from sentsim.models.dense import ACTIVATIONS

    assert set(ACTIVATIONS) == set(NUMPY_ACTIVATIONS)  # a Dense folder loads on both or on neither
    values = torch.linspace(-3, 3, 13)
    for path, module in ACTIVATIONS.items():  # and computes the same function (torch's defaults)
        np.testing.assert_allclose(NUMPY_ACTIVATIONS[path](values.numpy()), module()(values).numpy(), atol=1e-6)


@pytest.mark.parametrize(("config", "reason"), [
    ("[1, 2]", r"not a Dense config \(a JSON object is expected\)"),
    ('{"in_features": 4, "out_features": 2, "use_residual": true}', "a Dense with use_residual is not supported by "),
    ('{"out_features": 2}', r"not a Dense config \(KeyError\('in_features'\)\)"),
    ('{"in_features": 0, "out_features": 2}', "in_features and out_features must be positive"),
    ("{", "cannot read the Dense config"),
])
def test_both_backends_refuse_a_bad_dense_config_in_the_same_words(tmp_path, config, reason):
    from sentsim.errors import ModelLoadError
    from sentsim.inference.onnx_head import load_dense_layers
    from sentsim.models.dense import Dense

    (tmp_path / "config.json").write_text(config, encoding="utf-8")
    messages = []
    for load in (Dense.load, lambda folder: load_dense_layers([folder])):
        with pytest.raises(ModelLoadError, match=reason) as caught:
            load(tmp_path)
        messages.append(str(caught.value))
    assert messages[1] == messages[0].replace("supported by sentsim", "supported by the ONNX backend")
    assert all(message.startswith(str(tmp_path / "config.json")) for message in messages)
