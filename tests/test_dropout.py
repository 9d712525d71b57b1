"""Fast CPU dropout: the drop rate, the scaling, the gradient, and a model left exactly as it was."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from sentsim.training import TrainConfig, train
from sentsim.training.dropout import (
    ATTENTION_NAME,
    FastDropout,
    attention_with_fast_dropout,
    drop_mask,
    fast_dropout,
    inverted_dropout,
)

from .conftest import TRAIN_PAIRS


@pytest.mark.parametrize("p", [0.1, 0.5, 0.9])
def test_drop_rate_is_p(p):
    torch.manual_seed(0)
    rate = drop_mask((400, 1000), p).float().mean().item()
    assert abs(rate - p) < 5 * (p * (1 - p) / 400_000) ** 0.5


@settings(max_examples=25, deadline=None)
@given(shape=st.lists(st.integers(1, 40), min_size=1, max_size=4), p=st.floats(0.01, 0.99))
def test_masks_have_the_shape_and_differ_between_calls(shape, p):
    first, second = drop_mask(tuple(shape), p), drop_mask(tuple(shape), p)
    assert first.shape == second.shape == torch.Size(shape) and first.dtype == torch.bool
    if first.numel() >= 512:
        assert not torch.equal(first, second)


def test_seeded_masks_repeat():
    torch.manual_seed(3)
    first = drop_mask((64, 64), 0.3)
    torch.manual_seed(3)
    assert torch.equal(first, drop_mask((64, 64), 0.3))


def test_kept_elements_are_scaled_and_the_gradient_follows_the_mask():
    x = torch.ones(200, 300, requires_grad=True)
    y = inverted_dropout(x, 0.25)
    kept = y != 0
    assert torch.allclose(y[kept], torch.full_like(y[kept], 1 / 0.75))
    y.sum().backward()
    assert torch.equal(x.grad != 0, kept)
    assert torch.allclose(x.grad[kept], torch.full_like(x.grad[kept], 1 / 0.75))
    assert abs(y.mean().item() - 1.0) < 0.01


def test_edge_rates_and_evaluation_are_torchs():
    x = torch.randn(10, 10)
    assert inverted_dropout(x, 0.0) is x and inverted_dropout(x, 0.5, training=False) is x
    assert torch.equal(inverted_dropout(x, 1.0), torch.zeros_like(x))
    module = FastDropout(0.5).eval()
    assert module(x) is x


def test_attention_path_equals_sdpa_when_nothing_is_dropped():
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    torch.manual_seed(0)
    query, key, value = (torch.randn(3, 4, 7, 8) for _ in range(3))
    mask = torch.ones(3, 1, 7, 7, dtype=torch.bool)
    mask[0, ..., 5:] = False
    module = nn.Module()
    module.is_causal = False
    fast, _ = attention_with_fast_dropout(module, query, key, value, mask, dropout=1e-12)
    plain, _ = sdpa_attention_forward(module, query, key, value, mask, dropout=0.0)
    torch.testing.assert_close(fast, plain, atol=1e-5, rtol=1e-5)


def test_model_is_exactly_as_before_after_the_block(tiny_model):
    transformer_config = tiny_model.transformer.auto_model.config
    before = [type(module) for module in tiny_model.modules()]
    implementation = transformer_config._attn_implementation
    with fast_dropout(tiny_model) as swapped:
        assert swapped > 0
        assert any(isinstance(module, FastDropout) for module in tiny_model.modules())
        assert transformer_config._attn_implementation in (ATTENTION_NAME, implementation)
    assert [type(module) for module in tiny_model.modules()] == before
    assert transformer_config._attn_implementation == implementation
    with fast_dropout(tiny_model, enabled=False) as swapped:
        assert swapped == 0


def test_training_with_fast_dropout_learns_and_saves_a_plain_model(tiny_model, tmp_path: Path):
    first, second, scores = (list(column) for column in zip(*TRAIN_PAIRS, strict=True))
    result = train(tiny_model, sentences_a=first, sentences_b=second, labels=scores,
                   config=TrainConfig(batch_size=4, epochs=2, dtype="fp32"), quiet=True)
    losses = [record["loss"] for record in result.records if record.get("kind") == "train"]
    assert losses and all(torch.isfinite(torch.tensor(losses)))
    assert not any(isinstance(module, FastDropout) for module in tiny_model.modules())
    folder = tiny_model.save(tmp_path / "model")
    assert ATTENTION_NAME not in (folder / "config.json").read_text()
    assert json.loads((folder / "config.json").read_text())
