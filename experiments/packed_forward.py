"""Experiment (issue 14): BERT on packed tokens, so its linears see only real tokens. Measured, not kept.

A classic-recipe batch pads its 32 texts to the longest (1.12× the real tokens over an epoch), and
every linear, GELU, dropout and layer norm of the padded tokens is wasted work. Here the texts are
packed into one row of real tokens (``position_ids`` restart per text) and only attention puts them
back into per-text rows: a registered transformers attention function scatters Q, K and V into
``(texts, heads, longest, head_dim)`` and gathers its output, and the hidden states are scattered
into the padded shape once at the end for pooling. With dropout off it gives the padded forward's
loss and gradients to 3e-8; then forward + backward of the same batches (no optimizer step, so
the weights stay fixed) alternate between the two, step by step.

    .venv/bin/python experiments/packed_forward.py --batches 40

2 no-bf16 Intel Xeon cores, fp32, 2026-12-03: 1.04× (20 batches, first prototype), 1.03× (40
batches, padding 1.15×) and 1.00× (30 batches, padding 1.12×, this script): the scatter and gather
around each attention and the extra allocations take what 11–13 % fewer tokens in the linears
save. Not worth carrying model-specific forward code for.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import torch

from sentsim.training.dropout import fast_dropout, inverted_dropout

ATTENTION = "sentsim_packed_experiment"


class Packing:
    """Where the real tokens of a padded ``(texts, longest)`` batch sit, for scattering and gathering."""

    def __init__(self, mask: torch.Tensor) -> None:
        self.texts, self.longest = mask.shape
        self.index = mask.reshape(-1).bool().nonzero().squeeze(1)
        self.keep = mask.bool()

    def pad(self, packed: torch.Tensor) -> torch.Tensor:
        """``(1, heads, tokens, d)`` → ``(texts, heads, longest, d)``, zeros where there is padding."""
        flat = packed[0].transpose(0, 1)
        heads, width = flat.shape[1:]
        padded = flat.new_zeros(self.texts * self.longest, heads, width).index_copy(0, self.index, flat)
        return padded.view(self.texts, self.longest, heads, width).transpose(1, 2)


def packed_attention(module: Any, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                     attention_mask: Any, dropout: float = 0.0, scaling: float | None = None,
                     sentsim_packing: Packing | None = None, **kwargs: Any) -> tuple[torch.Tensor, None]:
    """Attention per text on re-padded Q, K, V; the output packed again, ``(1, tokens, heads, d)``."""
    packing = sentsim_packing
    assert packing is not None, "packed_attention needs the sentsim_packing keyword"
    q, k, v = packing.pad(query), packing.pad(key), packing.pad(value)
    scores = torch.matmul(q, k.transpose(-2, -1)) * (scaling or q.shape[-1] ** -0.5)
    scores = scores.masked_fill(~packing.keep[:, None, None, :], torch.finfo(scores.dtype).min)
    weights = torch.softmax(scores, dim=-1, dtype=torch.float32).to(value.dtype)
    output = torch.matmul(inverted_dropout(weights, dropout, training=module.training), v)
    heads, width = output.shape[1], output.shape[3]
    output = output.transpose(1, 2).reshape(-1, heads, width).index_select(0, packing.index)
    return output.unsqueeze(0), None


def packed_forward(bert: Any, features: dict[str, torch.Tensor]) -> torch.Tensor:
    """Last hidden states ``(texts, longest, hidden)`` of the padded batch, computed on packed tokens."""
    packing = Packing(features["attention_mask"])
    ids = features["input_ids"].reshape(-1).index_select(0, packing.index).unsqueeze(0)
    positions = torch.arange(packing.longest).expand(packing.texts, -1).reshape(-1)
    positions = positions.index_select(0, packing.index).unsqueeze(0)
    implementation, bert.config._attn_implementation = bert.config._attn_implementation, ATTENTION
    try:
        hidden = bert(input_ids=ids, position_ids=positions, token_type_ids=torch.zeros_like(ids),
                      attention_mask=None, sentsim_packing=packing, return_dict=True).last_hidden_state[0]
    finally:
        bert.config._attn_implementation = implementation
    full = hidden.new_zeros(packing.texts * packing.longest, hidden.shape[-1]).index_copy(0, packing.index, hidden)
    return full.view(packing.texts, packing.longest, -1)


def main() -> None:
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

    from sentsim import SentenceTransformer
    from sentsim.data import read_stsbenchmark
    from sentsim.losses import build_loss
    from sentsim.persistence.hub import bundled_model_path
    from sentsim.training.batching import LengthGroupedSampler, tokenize_pairs

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batches", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--data", default="../shared/data/stsbenchmark")
    args = parser.parse_args()
    AttentionInterface.register(ATTENTION, packed_attention)
    AttentionMaskInterface.register(ATTENTION, sdpa_mask)

    model = SentenceTransformer(str(bundled_model_path()))
    pairs = read_stsbenchmark(args.data, split="train")
    tokenized = tokenize_pairs(model.token_ids, pairs.sentences1, pairs.sentences2, pairs.scores)
    batches = list(LengthGroupedSampler(tokenized.lengths, batch_size=16, seed=42, group_batches=64))
    chosen = batches[:: max(1, len(batches) // args.batches)][: args.batches]
    bert, pooling, loss_fn = model[0].auto_model, model[1], build_loss("cosine")

    def step(rows: list[int], packed: bool) -> float:
        ids = [tokenized.ids_a[i] for i in rows] + [tokenized.ids_b[i] for i in rows]
        features = model[0].collate(ids)
        features["token_embeddings"] = packed_forward(bert, features) if packed else bert(
            input_ids=features["input_ids"], attention_mask=features["attention_mask"]).last_hidden_state
        first, second = pooling(features)["sentence_embedding"].chunk(2)
        loss = loss_fn(first, second, torch.tensor([tokenized.labels[i] for i in rows], dtype=torch.float32))
        loss.backward()
        return float(loss.detach())

    with fast_dropout(model):
        model.eval()  # dropout off: both forwards must give the same loss and gradients
        results = []
        for packed in (False, True):
            model.zero_grad(set_to_none=True)
            results.append((step(chosen[0], packed), {name: parameter.grad.clone() for name, parameter
                                                      in model.named_parameters() if parameter.grad is not None}))
        (loss_a, grads_a), (loss_b, grads_b) = results
        gap = max(float((grads_a[name] - grads_b[name]).abs().max()) for name in grads_a)
        print(f"dropout off: loss difference {abs(loss_a - loss_b):.1e}, largest gradient difference {gap:.1e}")
        model.train()
        seconds = {False: 0.0, True: 0.0}
        for round_index in range(args.rounds):
            for index, rows in enumerate(chosen):
                for packed in ((False, True) if (index + round_index) % 2 == 0 else (True, False)):
                    model.zero_grad(set_to_none=True)
                    torch.manual_seed(index)
                    started = time.perf_counter()
                    step(rows, packed)
                    seconds[packed] += time.perf_counter() - started
    real = sum(len(tokenized.ids_a[i]) + len(tokenized.ids_b[i]) for rows in chosen for i in rows)
    padded = sum(2 * len(rows) * max(max(len(tokenized.ids_a[i]), len(tokenized.ids_b[i])) for i in rows)
                 for rows in chosen)
    print(f"padding {padded / real:.3f}x; padded {seconds[False]:.2f} s, packed {seconds[True]:.2f} s: "
          f"{seconds[False] / seconds[True]:.3f}x")


if __name__ == "__main__":
    main()
