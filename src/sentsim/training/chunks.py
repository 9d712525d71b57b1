"""Big training batches in several smaller forward passes, for the same gradient at a lower peak memory.

The part of a training step's memory that grows with the batch is the activations its forward keeps
for the backward, in proportion to the batch's padded tokens: the longest length-grouped batch of
STSb (32 texts of 70 tokens) holds more than four times the tokens of an average one. A batch over
``max_tokens`` runs in chunks instead, each backpropagated before the next is embedded:

- **Per-pair losses** (a mean of one term per pair, such as the cosine MSE) need nothing more: a chunk
  of whole pairs gives its terms' share of the mean, and the chunks' gradients add up to the batch's.
  No extra work, so this is on by default.
- **Ranking losses** (CoSENT, AnglE, in-batch negatives) compare every pair with every other, so no
  chunk's loss exists alone. The batch is first embedded chunk by chunk without gradients, the loss
  and its gradient with respect to the embeddings are computed on all of them, then each chunk is
  embedded again with gradients and backpropagated from its rows of that gradient (the "gradient
  cache" of Gao et al., 2021). The random state is replayed, so both passes drop the same units.
  It costs a forward pass more for each chunked batch, so it runs only when asked for.

Hugging Face's gradient accumulation (``accumulation``) cuts each batch into that many micro-batches whatever
its size, each backpropagated under its own loss as a per-pair loss's chunks are: for a ranking loss that
is their semantics (each micro-batch its own ranking), not the batch's.

Chunks are cut from the length-sorted rows and each is trimmed to its own longest text, so they carry
no more padding than the batch did.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from sentsim.errors import ConfigError
from sentsim.training.config import FORWARD_TOKENS_MESSAGE, valid_forward_tokens

#: Padded tokens per training forward pass for per-pair losses when the run leaves it to sentsim:
#: 6 % of the classic recipe's STSb batches are over it (peak RSS 1,719 → 1,635 MB on an AMX Xeon in bf16,
#: no extra work; 512 saved only 20 MB more and was slower).
AUTO_PER_PAIR_TOKENS = 1024

Features = dict[str, torch.Tensor]


@dataclass(frozen=True, kw_only=True)
class Chunking:
    """How one run cuts its batches: the token limit, the texts per row and whether the loss is per pair."""

    #: Padded tokens (rows × longest row) above which a batch is cut; None: never cut.
    max_tokens: int | None
    #: Texts per row of the batch: the features hold side A's rows, then side B's (then negatives').
    sides: int = 2
    #: The loss is a mean of independent per-pair terms (chunks need no second pass).
    per_pair: bool = False
    #: Chunks keep the batch's rounding of its width (``TrainConfig.pad_to_multiple_of``).
    pad_to_multiple_of: int | None = None
    #: Micro-batches per batch, each under its own loss (Hugging Face's gradient accumulation); 1: none.
    accumulation: int = 1
    #: Texts per forward pass, from a loss that asks for it (``CachedMultipleNegativesRankingLoss``'s
    #: ``mini_batch_size``); None: no such limit.
    max_texts: int | None = None

    @classmethod
    def resolve(cls, setting: int | str | None, *, loss: nn.Module, sides: int,
                pad_to_multiple_of: int | None = None, accumulation: int = 1) -> Chunking:
        """``"auto"``: AUTO_PER_PAIR_TOKENS for per-pair losses, no limit for ranking ones; N: N for all.
        A loss with a ``mini_batch_size`` also limits the texts per forward pass to it."""
        per_pair = is_per_pair(loss)
        if setting == "auto":
            setting = AUTO_PER_PAIR_TOKENS if per_pair else None
        elif not valid_forward_tokens(setting):
            raise ConfigError(f"{FORWARD_TOKENS_MESSAGE}, not {setting!r}")
        texts = getattr(loss, "mini_batch_size", None)
        if accumulation > 1 and not per_pair and (setting is not None or texts is not None):
            raise ConfigError("gradient accumulation with a ranking loss runs each micro-batch whole: leave "
                              "max_forward_tokens 'auto' or None, and use a loss without mini_batch_size")
        return cls(max_tokens=setting, sides=sides, per_pair=per_pair, pad_to_multiple_of=pad_to_multiple_of,
                   accumulation=accumulation, max_texts=texts)

    @property
    def separate_losses(self) -> bool:
        """Whether each chunk is backpropagated under its own loss (per-pair losses, or accumulation)."""
        return self.per_pair or self.accumulation > 1

    def parts(self, features: Features) -> int:
        """How many chunks this batch needs (1: run it whole): at least ``accumulation``, within the token limit."""
        texts = features["input_ids"].shape[0]
        by_tokens = 1 if self.max_tokens is None else -(-features["input_ids"].numel() // self.max_tokens)
        by_texts = 1 if self.max_texts is None else -(-texts // self.max_texts)
        return max(1, min(texts // self.sides, max(by_tokens, by_texts, self.accumulation)))


def is_per_pair(loss: nn.Module) -> bool:
    """A loss declares ``per_pair = True`` when it is the mean of one term per pair; others are not."""
    return bool(getattr(loss, "per_pair", False))


def _rows(pairs: torch.Tensor, rows: int, sides: int) -> torch.Tensor:
    """The feature rows of ``pairs``: side A's rows come first, then side B's (then the negatives')."""
    return torch.cat([pairs + side * rows for side in range(sides)])


def chunk_backward(model: nn.Module, features: Features, labels: torch.Tensor, *, chunking: Chunking, parts: int,
                   forward: Callable[[nn.Module, Features], torch.Tensor],
                   loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
                   autocast: Callable[[], contextlib.AbstractContextManager],
                   backward: Callable[[torch.Tensor], None],
                   no_sync: Callable[[], contextlib.AbstractContextManager]) -> torch.Tensor:
    """Backpropagates one batch in ``parts`` chunks; returns the batch's loss (detached).

    ``backward(tensor)`` is the accelerator's backward and ``no_sync()`` its context that holds back
    the gradient all-reduce of a multi-process run, so processes exchange gradients once per step.
    """
    rows = labels.shape[0]
    groups = torch.arange(rows, device=features["input_ids"].device).tensor_split(parts)
    if chunking.separate_losses:
        total = torch.zeros(())
        for number, pairs in enumerate(groups):
            index = _rows(pairs, rows, chunking.sides)
            with autocast():
                embeddings = forward(model, take_rows(features, index, multiple=chunking.pad_to_multiple_of))
            value = loss(embeddings, labels[pairs]) * (len(pairs) / rows)
            with no_sync() if number < parts - 1 else contextlib.nullcontext():
                backward(value)
            total = total + value.detach().float().cpu()
        return total
    return _cached_backward(model, features, labels, groups=groups, sides=chunking.sides,
                            multiple=chunking.pad_to_multiple_of, forward=forward,
                            loss=loss, autocast=autocast, backward=backward, no_sync=no_sync)


def _cached_backward(model: nn.Module, features: Features, labels: torch.Tensor, *, groups: list[torch.Tensor],
                     sides: int, multiple: int | None, forward: Callable, loss: Callable, autocast: Callable,
                     backward: Callable, no_sync: Callable) -> torch.Tensor:
    """The gradient cache: embed all chunks without gradients, take d loss / d embeddings, replay each chunk."""
    rows, device = labels.shape[0], features["input_ids"].device
    index = [_rows(pairs, rows, sides) for pairs in groups]
    states, pieces = [], []
    for chunk in index:
        states.append(_random_state(device))
        with torch.no_grad(), autocast():
            pieces.append(forward(model, take_rows(features, chunk, multiple=multiple)).float())
    embeddings = torch.empty((sides * rows, pieces[0].shape[1]), dtype=torch.float32, device=pieces[0].device)
    for chunk, piece in zip(index, pieces, strict=True):
        embeddings[chunk] = piece
    embeddings.requires_grad_(True)
    value = loss(embeddings, labels)
    value.backward()  # reaches only the leaf `embeddings`: no weight gradients, nothing to all-reduce
    gradient = embeddings.grad
    after = _random_state(device)
    for number, (chunk, state) in enumerate(zip(index, states, strict=True)):
        _set_random_state(state, device)
        with autocast():
            piece = forward(model, take_rows(features, chunk, multiple=multiple)).float()
        with no_sync() if number < len(index) - 1 else contextlib.nullcontext():
            backward_through = (piece * gradient[chunk]).sum()  # d/dθ of <piece, g>: the chunk's share
            backward(backward_through)
    _set_random_state(after, device)
    return value.detach().cpu()


def take_rows(features: Features, index: torch.Tensor, *, multiple: int | None = None) -> Features:
    """The rows ``index`` of every feature, cut to the chunk's own longest text (rounded up to ``multiple``).

    Only right padding is cut (sentsim's collate pads on the right); any other mask keeps every column.
    """
    index = index.to(features["attention_mask"].device)
    mask = features["attention_mask"].index_select(0, index)
    width = int(mask.sum(dim=1).max())
    if not bool(mask[:, :width].any(dim=0).all()) or bool(mask[:, width:].any()):
        width = mask.shape[1]
    elif multiple:
        width = min(mask.shape[1], -(-width // multiple) * multiple)
    return {name: value.index_select(0, index)[:, :width] if value.dim() > 1 else value.index_select(0, index)
            for name, value in features.items()}


def _random_state(device: torch.device) -> tuple[torch.Tensor, torch.Tensor | None]:
    cuda = torch.cuda.get_rng_state(device) if device.type == "cuda" else None
    return torch.get_rng_state(), cuda


def _set_random_state(state: tuple[torch.Tensor, torch.Tensor | None], device: torch.device) -> None:
    cpu, cuda = state
    torch.set_rng_state(cpu)
    if cuda is not None:
        torch.cuda.set_rng_state(cuda, device)
