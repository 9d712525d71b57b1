"""Experiment (issue 14, not shipped): dropout masks from a counter hash instead of torch's sampler.

torch draws CPU dropout masks with ``bernoulli_``; in a torch profile of a bf16 classic-recipe step
of MiniLM on 2 Zen 4 cores it was 14 % of the step (19 masks, ~35 ms). Hashing each element's
position with a per-call seed drawn from torch's generator (``lowbias32`` on int32 tensors) makes a
mask ~3× faster (0.86 vs 3.1 ms for 32×20×384) and per-step timings here showed forward −10–20 %.
Whole classic epochs (``train_speed.py`` worker, alone, 2 rounds each) did not confirm it: 51.4 and
53.1 s against 49.6 and 64.4 s for torch's dropout, with peak RSS +50–80 MB; letting SDPA keep its
own attention dropout was no slower. So it stays here, measured, and out of the library.

    .venv/bin/python experiments/hashed_dropout.py --dtype bf16 --steps 30

"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn

#: The attention implementation name registered with transformers while training runs.
ATTENTION_NAME = "sentsim_hashed_dropout"
_GOLDEN = -1640531535  # 0x9E3779B1 as int32: spreads consecutive positions over the whole range
_MULTIPLIERS = (0x7FEB352D, -2073254261)  # lowbias32's 0x7feb352d and 0x846ca68b as int32
_positions = torch.empty(0, dtype=torch.int32)  # position × golden, grown on demand, shared by every call


def _scrambled_positions(count: int) -> torch.Tensor:
    global _positions
    if _positions.numel() < count:
        _positions = torch.arange(max(count, 2 * _positions.numel()), dtype=torch.int32).mul_(_GOLDEN)
    return _positions[:count]


def keep_mask(shape: torch.Size, p: float) -> torch.Tensor:
    """A CPU bool tensor of ``shape``, each element True with probability 1 − ``p``.

    int32 arithmetic wraps, so this is the uint32 hash computed in two's complement; ``>>`` on int32
    is arithmetic, so each shift is masked down to its logical result.
    """
    seed = int(torch.randint(-(2**31), 2**31 - 1, (1,)))
    count = 1
    for size in shape:
        count *= size
    value = _scrambled_positions(count) + seed
    value ^= (value >> 16) & 0xFFFF
    value *= _MULTIPLIERS[0]
    value ^= (value >> 15) & 0x1FFFF
    value *= _MULTIPLIERS[1]
    value ^= (value >> 16) & 0xFFFF
    # value is uniform over int32: keep where it is at or above the p-quantile
    return (value >= round(p * 2**32) - 2**31).view(shape)


def hashed_dropout(x: torch.Tensor, p: float) -> torch.Tensor:
    """Inverted dropout (kept elements scaled by 1 / (1 − p)) with a hashed mask; torch's off the CPU."""
    if x.device.type != "cpu":
        return nn.functional.dropout(x, p, training=True)
    if p <= 0.0:
        return x
    if p >= 1.0:
        return torch.zeros_like(x)
    return torch.where(keep_mask(x.shape, p), x * (1.0 / (1.0 - p)), 0.0)


class HashedDropout(nn.Module):
    """A drop-in for ``nn.Dropout(p)`` (same ``p``, same train/eval behaviour) using :func:`hashed_dropout`."""

    def __init__(self, p: float = 0.5) -> None:
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return hashed_dropout(x, self.p) if self.training else x

    def extra_repr(self) -> str:
        return f"p={self.p}"


def attention_with_hashed_dropout(module: nn.Module, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                                  attention_mask: torch.Tensor | None, dropout: float = 0.0,
                                  scaling: float | None = None, **kwargs: Any) -> tuple[torch.Tensor, None]:
    """transformers' SDPA attention, except that attention-probability dropout uses a hashed mask.

    Without dropout (evaluation) it is transformers' own ``sdpa_attention_forward``. With dropout,
    torch's SDPA falls back to its math path on CPU anyway; this is that path with the fast mask.
    The mask is SDPA's (the same mask function is registered under this name): bool, True = attend.
    """
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    if dropout == 0.0 or kwargs.get("output_attentions") or getattr(module, "is_causal", False):
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling,
                                      **kwargs)
    scale = scaling if scaling is not None else query.size(-1) ** -0.5
    scores = torch.matmul(query, key.transpose(-2, -1)) * scale
    if attention_mask is not None:
        if attention_mask.dtype == torch.bool:
            scores = scores.masked_fill(~attention_mask, torch.finfo(scores.dtype).min)
        else:
            scores = scores + attention_mask
    weights = hashed_dropout(torch.softmax(scores, dim=-1, dtype=torch.float32).to(value.dtype), dropout)
    return torch.matmul(weights, value).transpose(1, 2).contiguous(), None


def _register() -> None:
    from transformers import AttentionInterface
    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, AttentionMaskInterface, sdpa_mask

    if ATTENTION_NAME not in ALL_MASK_ATTENTION_FUNCTIONS:
        AttentionInterface.register(ATTENTION_NAME, attention_with_hashed_dropout)
        AttentionMaskInterface.register(ATTENTION_NAME, sdpa_mask)


@contextmanager
def hashed_dropout_for(model: nn.Module) -> Iterator[None]:
    """While the block runs, ``model`` drops out with hashed masks; afterwards it is exactly as before.

    Every plain ``nn.Dropout`` becomes a :class:`HashedDropout` with the same ``p``, and every
    transformers config inside that uses ``sdpa`` attention uses :data:`ATTENTION_NAME` instead
    (other attention implementations are left alone: their dropout stays torch's).
    """
    swapped: list[tuple[nn.Module, str, nn.Module]] = []
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if type(child) is nn.Dropout:
                replacement = HashedDropout(child.p)
                replacement.train(child.training)
                setattr(parent, name, replacement)
                swapped.append((parent, name, child))
    configs = list({id(config): config for module in model.modules()
                    if getattr(config := getattr(module, "config", None), "_attn_implementation", None) == "sdpa"
                    }.values())
    if configs:
        _register()
    for config in configs:
        config._attn_implementation = ATTENTION_NAME
    try:
        yield
    finally:
        for config in configs:
            config._attn_implementation = "sdpa"
        for parent, name, original in swapped:
            original.train(getattr(parent, name).training)
            setattr(parent, name, original)


def main() -> None:
    """Per-step forward/backward/optimizer milliseconds with torch's and with hashed dropout, alternating."""
    import argparse
    import time
    from pathlib import Path

    from sentsim import SentenceTransformer
    from sentsim.data import read_stsbenchmark
    from sentsim.inference.forward import autocast_context
    from sentsim.losses import build_loss
    from sentsim.persistence.hub import bundled_model_path
    from sentsim.training.batching import LengthGroupedSampler, PairCollator, tokenize_pairs
    from sentsim.training.config import TrainConfig
    from sentsim.training.optimizer import build_optimizer

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--dtype", choices=("fp32", "bf16"), default="bf16")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data"
                        / "stsbenchmark")
    args = parser.parse_args()
    model = SentenceTransformer(bundled_model_path())
    model.train()
    train = read_stsbenchmark(args.data, "train")
    pairs = tokenize_pairs(model.token_ids, train.sentences1, train.sentences2, train.scores)
    collate = PairCollator(pairs, model.collate, pad_to_multiple_of=None)
    batches = list(LengthGroupedSampler(pairs.lengths, batch_size=16, seed=0))[: 2 * args.steps + 4]
    optimizer = build_optimizer(model, TrainConfig(batch_size=16), device=torch.device("cpu"))
    loss_fn = build_loss("cosine")
    totals = {"torch": 0.0, "hashed": 0.0}

    def step(indices: list[int]) -> float:
        started = time.perf_counter()
        features, labels = collate(indices)
        with autocast_context(args.dtype, torch.device("cpu")):
            embeddings = model(features)["sentence_embedding"]
        first, second = embeddings.float().chunk(2)
        loss_fn(first, second, labels.float()).backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return time.perf_counter() - started

    for warm in batches[:4]:
        step(warm)
    for number, indices in enumerate(batches[4:]):
        kind = ("torch", "hashed")[(number // 2 + number) % 2]  # alternate, and swap the order every pair
        if kind == "hashed":
            with hashed_dropout_for(model):
                totals[kind] += step(indices)
        else:
            totals[kind] += step(indices)
    for kind, seconds in totals.items():
        print(f"{kind} dropout: {1000 * seconds / args.steps:.1f} ms/step ({args.dtype}, {args.steps} steps)")


if __name__ == "__main__":
    main()
