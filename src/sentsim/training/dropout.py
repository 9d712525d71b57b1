"""Dropout whose CPU masks cost a fraction of torch's: a counter hash instead of a serial sampler.

Why: on CPU torch draws a dropout mask one element at a time (``bernoulli_`` runs a serial loop
over the generator, ~6 ns per element on a Zen 4 core, then keeps the mask in the input's dtype for
the backward), and MiniLM's 19 dropouts per forward made that 14 % of a bf16 training step. Here
each mask is a vectorised hash of the element's position and one seed drawn from torch's global
generator, so seeding and a run's saved RNG state (resume) work as before; the backward keeps a
bool mask. The drop rate is ``p``, kept elements are scaled by exactly 1 / (1 − ``p``). Off the
CPU, or outside training, it is torch's own dropout. (Measured alternatives: 16-bit lanes of
64-bit ``random_`` draws were half as fast; see ``benchmarks/README.md``.)
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn

_GOLDEN = -1640531535  # 0x9E3779B1 as int32: spreads consecutive positions over the whole range
_MULTIPLIERS = (0x7FEB352D, -2073254261)  # lowbias32's 0x7feb352d and 0x846ca68b as int32
_ROUNDS = ((16, 0xFFFF), (15, 0x1FFFF), (16, 0xFFFF))  # lowbias32's shifts, each as (shift, mask)
#: Elements hashed per pass: two 1 MiB int32 buffers that stay in cache, whatever the tensor's size.
_CHUNK = 1 << 18
_steps: torch.Tensor | None = None  # position × golden for one chunk, made on first use


def _as_int32(value: int) -> int:
    return (value + 2**31) % 2**32 - 2**31


def drop_mask(shape: torch.Size | tuple[int, ...], p: float) -> torch.Tensor:
    """A CPU bool tensor of ``shape``, True (drop) with probability ``p`` (to within 2⁻³²).

    Element i gets lowbias32(i · golden + seed), one seed per call from torch's generator; int32
    arithmetic wraps, so this is the uint32 hash in two's complement, and each ``>>`` (arithmetic
    on int32) is masked down to the logical shift. The hash runs in place on two chunk-sized int32
    buffers, so a mask costs its bool output and 2 MiB, not four bytes per element.
    """
    global _steps
    if _steps is None:
        _steps = torch.arange(_CHUNK, dtype=torch.int32).mul_(_GOLDEN)
    seed = int(torch.randint(-(2**31), 2**31 - 1, (1,)))
    count = math.prod(shape)
    threshold = round(p * 2**32) - 2**31  # the hash is uniform over int32: drop under the p-quantile
    mask = torch.empty(count, dtype=torch.bool)
    value = torch.empty(min(count, _CHUNK), dtype=torch.int32)
    shifted = torch.empty_like(value)
    for start in range(0, count, _CHUNK):
        size = min(_CHUNK, count - start)
        hashed, scratch = value[:size], shifted[:size]
        torch.add(_steps[:size], _as_int32(start * _GOLDEN + seed), out=hashed)
        for multiplier, (shift, keep) in zip((*_MULTIPLIERS, None), _ROUNDS, strict=True):
            torch.bitwise_right_shift(hashed, shift, out=scratch)
            hashed ^= scratch.bitwise_and_(keep)
            if multiplier is not None:
                hashed *= multiplier
        torch.lt(hashed, threshold, out=mask[start : start + size])
    return mask.view(shape)


def inverted_dropout(x: torch.Tensor, p: float, *, training: bool = True) -> torch.Tensor:
    """Inverted dropout, as ``nn.functional.dropout``; fast masks (:func:`drop_mask`) on the CPU."""
    if not training or p == 0.0:
        return x
    if x.device.type != "cpu" or not 0.0 < p < 1.0:
        return nn.functional.dropout(x, p, training=True)
    return x.masked_fill(drop_mask(x.shape, p), 0.0).mul_(1.0 / (1.0 - p))


class FastDropout(nn.Dropout):
    """``nn.Dropout`` with :func:`inverted_dropout`'s CPU masks; same ``p``, same train/eval behaviour, no state."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.inplace:
            return super().forward(x)
        return inverted_dropout(x, self.p, training=self.training)


#: The attention implementation name registered with transformers while a run trains.
ATTENTION_NAME = "sentsim_sdpa_fast_dropout"


def attention_with_fast_dropout(module: nn.Module, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                                attention_mask: torch.Tensor | None, dropout: float = 0.0,
                                scaling: float | None = None, **kwargs: Any) -> tuple[torch.Tensor, None]:
    """transformers' SDPA attention, except that attention-probability dropout uses :func:`drop_mask`.

    With dropout on the CPU, torch's SDPA runs its math path (QKᵀ, softmax, dropout, ·V) anyway;
    this is that path with the fast mask. Anything else (evaluation, GPUs, grouped or causal
    attention, position biases) is transformers' own ``sdpa_attention_forward``, unchanged. The mask
    comes from SDPA's mask function (registered under this name too): bool, True = attend, or additive.
    """
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    causal = kwargs.get("is_causal")
    if causal is None:
        causal = getattr(module, "is_causal", False)
    plain = (dropout == 0.0 or query.device.type != "cpu" or getattr(module, "num_key_value_groups", 1) > 1
             or causal or kwargs.get("position_bias") is not None or kwargs.get("softcap") is not None
             or key.shape[1] != query.shape[1])
    if plain:
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling,
                                      **kwargs)
    scale = scaling if scaling is not None else query.size(-1) ** -0.5
    scores = torch.matmul(query, key.transpose(-2, -1)) * scale
    if attention_mask is not None:
        if attention_mask.dtype == torch.bool:
            scores = scores.masked_fill(~attention_mask, torch.finfo(scores.dtype).min)
        else:
            scores = scores + attention_mask
    weights = torch.softmax(scores, dim=-1, dtype=torch.float32).to(value.dtype)
    output = torch.matmul(inverted_dropout(weights, dropout), value)
    return output.transpose(1, 2).contiguous(), None


def _register_attention() -> None:
    from transformers import AttentionInterface
    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, AttentionMaskInterface, sdpa_mask

    if ATTENTION_NAME not in ALL_MASK_ATTENTION_FUNCTIONS:
        AttentionInterface.register(ATTENTION_NAME, attention_with_fast_dropout)
        AttentionMaskInterface.register(ATTENTION_NAME, sdpa_mask)


@contextmanager
def fast_dropout(model: nn.Module, *, enabled: bool = True) -> Iterator[int]:
    """While the block runs, ``model`` drops out with fast CPU masks; afterwards it is exactly as before.

    Every plain ``nn.Dropout`` becomes a :class:`FastDropout` with the same ``p``, and every
    transformers config inside that uses ``sdpa`` attention uses :data:`ATTENTION_NAME` (other
    attention implementations keep torch's dropout). Yields how many dropouts were swapped. Nothing
    that is saved changes: dropout has no weights, and the attention name is put back on exit.
    """
    if not enabled:
        yield 0
        return
    swapped: list[tuple[nn.Module, str, nn.Module]] = []
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if type(child) is nn.Dropout and not child.inplace:
                replacement = FastDropout(child.p)
                replacement.train(child.training)
                setattr(parent, name, replacement)
                swapped.append((parent, name, child))
    configs = list({id(config): config for module in model.modules()
                    if getattr(config := getattr(module, "config", None), "_attn_implementation", None) == "sdpa"
                    }.values())
    if configs:
        _register_attention()
    for config in configs:
        config._attn_implementation = ATTENTION_NAME
    try:
        yield len(swapped) + len(configs)
    finally:
        for config in configs:
            config._attn_implementation = "sdpa"
        for parent, name, original in swapped:
            original.train(getattr(parent, name).training)
            setattr(parent, name, original)
