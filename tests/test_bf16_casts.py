"""bf16 inference without per-forward weight casts: the same vectors, bit for bit, as autocast's own casts."""

from __future__ import annotations

import copy
import logging

import numpy as np
import pytest
import torch
from torch import nn

from sentsim.inference.encode import encode_token_ids
from sentsim.inference.forward import cast_linear_weights

SENTENCES = [
    "a man is playing a flute",
    "a dog",
    "two children are playing ball in the park with a red ball",
    "a cat is eating food",
    "the stock market fell sharply on monday as investors worried",
]


def _token_ids(model) -> list[list[int]]:
    return model.token_ids(SENTENCES)


def test_cast_linear_weights_gives_the_same_bf16_vectors(tiny_model):
    ids = _token_ids(tiny_model)
    # bf16's bits follow the batches (their padded length changes the products' shapes), so each batch
    # size is compared with itself
    expected = {size: encode_token_ids(tiny_model, ids, dtype="bf16", batch_size=size) for size in (1, 2, 32)}
    cast = copy.deepcopy(tiny_model)
    linears = [module for module in cast.modules() if isinstance(module, nn.Linear)]
    assert cast_linear_weights(cast, torch.bfloat16) == len(linears) > 0
    assert all(module.weight.dtype == torch.bfloat16 for module in linears)
    assert cast.transformer.auto_model.embeddings.word_embeddings.weight.dtype == torch.float32  # not a Linear
    for batch_size in (1, 2, 32):  # one batch per call and several (the no_grad path) alike
        assert torch.equal(encode_token_ids(cast, ids, dtype="bf16", batch_size=batch_size), expected[batch_size])


def test_cast_leaves_linear_subclasses_with_their_own_forward_alone():
    class Scaled(nn.Linear):
        def forward(self, inputs: torch.Tensor) -> torch.Tensor:
            return torch.einsum("...i,oi->...o", inputs, self.weight) * 2

    model = nn.Sequential(nn.Linear(4, 4), Scaled(4, 4))
    assert cast_linear_weights(model) == 1
    assert model[0].weight.dtype == torch.bfloat16 and model[1].weight.dtype == torch.float32


def test_several_batches_equal_one_batch_per_call_in_bf16(tiny_model):
    """Several batches run under no_grad (autocast keeps its weight casts); one batch under inference mode."""
    ids = _token_ids(tiny_model)
    together = encode_token_ids(tiny_model, ids, dtype="bf16", batch_size=1)
    alone = torch.cat([encode_token_ids(tiny_model, [row], dtype="bf16", batch_size=1) for row in ids])
    assert torch.equal(together, alone)
    assert not together.requires_grad
    assert all(parameter.grad is None for parameter in tiny_model.parameters())


@pytest.fixture
def bf16_here(monkeypatch):
    """Serving code sees a native-bf16 CPU, whatever this one is (bf16 is emulated, only slower, elsewhere)."""
    import sentsim.inference.forward as forward

    real = forward.resolve_precision
    monkeypatch.setattr(forward, "resolve_precision", lambda precision, device: "bf16" if precision == "auto"
                        else real(precision, device))


def test_served_model_gets_bf16_linears_and_offline_vectors(tiny_model, bf16_here):
    from sentsim.serve.engine import TorchEngine, _serving_model

    served = _serving_model(copy.deepcopy(tiny_model), reload=lambda: pytest.fail("must not reload"))
    assert served.transformer.auto_model.encoder.layer[0].intermediate.dense.weight.dtype == torch.bfloat16
    engine = TorchEngine(served, name="tiny")
    expected = encode_token_ids(tiny_model, _token_ids(tiny_model), dtype="bf16", batch_size=engine.batch_size,
                                run_overhead=engine.run_overhead)  # batched as the engine batches
    ids, _ = engine.tokenize(SENTENCES)
    np.testing.assert_array_equal(engine.embed_tokens(ids), expected.numpy())


def test_served_model_falls_back_to_fp32_when_the_cast_fails(tiny_model, bf16_here, monkeypatch, caplog):
    import sentsim.inference.forward as forward
    from sentsim.serve.engine import _serving_model

    def broken(model, dtype=torch.bfloat16):
        raise RuntimeError("expected both operands to have the same dtype")

    monkeypatch.setattr(forward, "cast_linear_weights", broken)
    fresh = copy.deepcopy(tiny_model)
    with caplog.at_level(logging.WARNING, logger="sentsim.serve.engine"):
        assert _serving_model(tiny_model, reload=lambda: fresh) is fresh
    assert "fp32 weights" in caplog.text


def test_served_model_falls_back_when_the_cast_changes_the_vectors(tiny_model, bf16_here, monkeypatch, caplog):
    import sentsim.inference.forward as forward
    from sentsim.serve.engine import _serving_model

    real = forward.cast_linear_weights

    def drifting(model, dtype=torch.bfloat16):
        count = real(model, dtype)
        with torch.no_grad():
            model.transformer.auto_model.encoder.layer[0].output.dense.bias.add_(0.5)
        return count

    monkeypatch.setattr(forward, "cast_linear_weights", drifting)
    fresh = copy.deepcopy(tiny_model)
    with caplog.at_level(logging.WARNING, logger="sentsim.serve.engine"):
        assert _serving_model(tiny_model, reload=lambda: fresh) is fresh
    assert "changed the embeddings" in caplog.text


def test_encode_inside_a_callers_autocast_leaves_training_gradients_intact(tiny_model):
    """No weight cast made by encode's no_grad batches may reach a training forward in the same context."""
    ids = _token_ids(tiny_model)
    features = tiny_model.collate(ids)

    def gradients(model, *, encode_first: bool) -> list[torch.Tensor]:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            if encode_first:
                encode_token_ids(model, ids, dtype="bf16", batch_size=1)
            model.eval()  # no dropout: both runs must compute the very same gradients
            model(dict(features))["sentence_embedding"].float().sum().backward()
        return [parameter.grad for parameter in model.parameters() if parameter.requires_grad]

    plain = gradients(copy.deepcopy(tiny_model), encode_first=False)
    after_encode = gradients(tiny_model, encode_first=True)
    assert sum(grad is not None for grad in plain) > 10  # all but the unused pooler's
    assert all((a is None and b is None) or (a is not None and b is not None and torch.equal(a, b))
               for a, b in zip(plain, after_encode, strict=True))


def test_auto_runs_a_small_single_batch_in_fp32_and_larger_calls_in_bf16(tiny_model, bf16_here):
    """Casting every weight to bf16 costs more than it saves on a query or two; "auto" takes fp32 there."""
    from sentsim.inference.forward import AUTO_FP32_BELOW_TOKENS

    short = tiny_model.token_ids(["a dog"])
    assert len(short[0]) < AUTO_FP32_BELOW_TOKENS
    assert torch.equal(encode_token_ids(tiny_model, short, dtype="auto"),
                       encode_token_ids(tiny_model, short, dtype="fp32"))
    many = tiny_model.token_ids(SENTENCES * 4)  # one batch of more than the threshold's padded tokens
    assert torch.equal(encode_token_ids(tiny_model, many, dtype="auto"),
                       encode_token_ids(tiny_model, many, dtype="bf16"))
    split = encode_token_ids(tiny_model, short * 2, dtype="auto", batch_size=1)  # two batches: bf16
    assert torch.equal(split, encode_token_ids(tiny_model, short * 2, dtype="bf16", batch_size=1))


def test_a_model_with_bf16_linears_stays_in_bf16_under_auto(tiny_model, bf16_here):
    short = tiny_model.token_ids(["a dog"])
    expected = encode_token_ids(tiny_model, short, dtype="bf16")
    cast_linear_weights(tiny_model)
    assert torch.equal(encode_token_ids(tiny_model, short, dtype="auto"), expected)
