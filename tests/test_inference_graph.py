"""The traced transformer graph of the server: used only where it reproduces the eager forward bit for bit."""

from __future__ import annotations

import logging

import pytest
import torch
from torch import nn

from sentsim.inference.encode import encode_token_ids
from sentsim.inference.graph import trace_transformer

SENTENCES = [
    "a man is playing a flute",
    "a dog",
    "two children are playing ball in the park with a red ball",
    "a cat is eating food",
]


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_traced_graph_gives_the_eager_vectors(tiny_model, precision):
    ids = tiny_model.token_ids(SENTENCES)
    eager = [encode_token_ids(tiny_model, ids[:count], dtype=precision) for count in (1, 2, 4)]
    assert trace_transformer(tiny_model, precision=precision)
    assert tiny_model.transformer._inference_graph is not None
    for count, expected in zip((1, 2, 4), eager, strict=True):
        assert torch.equal(encode_token_ids(tiny_model, ids[:count], dtype=precision), expected)


def test_graph_is_only_used_where_it_was_recorded(tiny_model, monkeypatch):
    """Other precision, gradients or training mode: the eager forward runs (the graph would be wrong there)."""
    assert trace_transformer(tiny_model, precision="fp32")
    calls = []
    graph, names, precision = tiny_model.transformer._inference_graph
    tiny_model.transformer.use_inference_graph(lambda *tensors: calls.append(1) or graph(*tensors),
                                               inputs=names, precision=precision)
    features = tiny_model.collate(tiny_model.token_ids(SENTENCES))
    tiny_model.eval()
    encode_token_ids(tiny_model, tiny_model.token_ids(SENTENCES), dtype="fp32")
    assert len(calls) == 1
    encode_token_ids(tiny_model, tiny_model.token_ids(SENTENCES), dtype="bf16")
    with torch.no_grad():
        tiny_model.train()
        tiny_model(dict(features))
    tiny_model.eval()
    output = tiny_model(dict(features))["sentence_embedding"]  # gradients on: training code
    assert len(calls) == 1 and output.requires_grad


class _ShapeDependent(nn.Module):
    """An encoder whose Python branch on the sequence length a trace bakes in as a constant."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.embed = nn.Embedding(128, width)

    def forward(self, input_ids, attention_mask, return_dict=True):
        hidden = self.embed(input_ids)
        if input_ids.shape[1] % 2:  # the probes have odd and even lengths, whatever the tokenizer makes of them
            hidden = hidden * 2
        return (hidden,)


def test_a_trace_that_does_not_generalise_keeps_the_eager_forward(tiny_model, caplog):
    tiny_model.transformer.auto_model = _ShapeDependent(tiny_model.embedding_dimension)
    with caplog.at_level(logging.WARNING, logger="sentsim.inference.graph"):
        assert not trace_transformer(tiny_model, precision="fp32")
    assert tiny_model.transformer._inference_graph is None
    assert "other vectors" in caplog.text


def test_a_model_tracing_cannot_record_keeps_the_eager_forward(tiny_model, monkeypatch, caplog):
    def refuse(*args, **kwargs):
        raise RuntimeError("Tracer cannot infer type of output")

    monkeypatch.setattr(torch.jit, "trace", refuse)
    with caplog.at_level(logging.WARNING, logger="sentsim.inference.graph"):
        assert not trace_transformer(tiny_model, precision="fp32")
    assert tiny_model.transformer._inference_graph is None and "tracing the transformer failed" in caplog.text


def test_the_graph_is_neither_saved_nor_a_parameter(tiny_model, tmp_path):
    from sentsim import SentenceTransformer

    before = {name: tensor.clone() for name, tensor in tiny_model.state_dict().items()}
    parameters = len(list(tiny_model.parameters()))
    assert trace_transformer(tiny_model, precision="fp32")
    assert len(list(tiny_model.parameters())) == parameters
    assert tiny_model.state_dict().keys() == before.keys()
    loaded = SentenceTransformer(tiny_model.save(tmp_path / "model"))
    assert loaded.transformer._inference_graph is None
    ids = tiny_model.token_ids(SENTENCES)
    assert torch.equal(encode_token_ids(loaded, ids, dtype="fp32"), encode_token_ids(tiny_model, ids, dtype="fp32"))


def test_load_engine_serves_through_the_graph_with_offline_vectors(tiny_model, tmp_path):
    import numpy as np

    from sentsim.serve.engine import load_engine

    folder = tiny_model.save(tmp_path / "model")
    engine = load_engine(folder, backend="torch", runners=1)
    assert engine.model.transformer._inference_graph is not None
    ids, _ = engine.tokenize(SENTENCES)
    offline = encode_token_ids(tiny_model, ids, dtype=engine.precision, run_overhead=engine.run_overhead).numpy()
    np.testing.assert_array_equal(engine.embed_tokens(ids), offline)


@pytest.mark.parametrize("architecture", ["roberta", "distilbert", "mpnet", "deberta-v2"])
def test_other_encoder_architectures_trace_to_the_eager_vectors(architecture, tiny_transformer_dir, tmp_path):
    """Each has its own position and mask code; the graph must still match eager exactly, or not be used."""
    import shutil

    import transformers

    from sentsim import SentenceTransformer

    sizes = {"vocab_size": 200, "max_position_embeddings": 80}
    configs = {
        "roberta": transformers.RobertaConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                              intermediate_size=64, pad_token_id=0, **sizes),
        "distilbert": transformers.DistilBertConfig(dim=32, n_layers=2, n_heads=2, hidden_dim=64, **sizes),
        "mpnet": transformers.MPNetConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                          intermediate_size=64, pad_token_id=0, **sizes),
        "deberta-v2": transformers.DebertaV2Config(hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                                   intermediate_size=64, **sizes),
    }
    folder = tmp_path / architecture
    shutil.copytree(tiny_transformer_dir, folder)  # its WordPiece tokenizer; the weights are replaced
    for weights in folder.glob("*.safetensors"):
        weights.unlink()
    torch.manual_seed(0)
    transformers.AutoModel.from_config(configs[architecture]).save_pretrained(folder)
    model = SentenceTransformer.from_transformer(folder, pooling="mean", max_seq_length=64).eval()
    ids = model.token_ids(SENTENCES)
    expected = encode_token_ids(model, ids, dtype="fp32", batch_size=3)
    assert trace_transformer(model, precision="fp32")
    assert torch.equal(encode_token_ids(model, ids, dtype="fp32", batch_size=3), expected)
