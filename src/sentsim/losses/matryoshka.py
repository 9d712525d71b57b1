"""Matryoshka training (Kusupati et al., 2022): a loss taken again on each leading slice of the embedding.

Why: a model trained so that its first 256, 128 or 64 dimensions already work can be served shortened
(``truncate_dim``, the server's ``dimensions``) for smaller indexes and faster search. The wrapper needs
no second forward pass: the loop computes the embeddings once and this loss slices them, as
sentence-transformers' ``MatryoshkaLoss`` does (each slice re-normalised to unit length, the base loss
taken on it and weighted, the largest slice first).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sentsim.errors import ConfigError

__all__ = ["MatryoshkaLoss"]

logger = logging.getLogger(__name__)


class MatryoshkaLoss(nn.Module):
    """``Σ weight_d · loss(embeddings[..., :d] re-normalised)`` over ``matryoshka_dims``.

    Wraps any of sentsim's losses (scored pairs or in-batch negatives) and keeps their call signature:
    every ``(batch, dim)`` embedding argument is sliced, labels and keywords pass unchanged.
    ``n_dims_per_step`` > 0 takes that many of the dimensions per step, drawn with torch's generator so
    that a seeded run (and a resumed one) draws the same. Sentence-transformers' constructor, checks and
    sorting (largest dimension first, weights following).
    """

    def __init__(self, model: nn.Module | None, loss: nn.Module, matryoshka_dims: Sequence[int],
                 matryoshka_weights: Sequence[float] | None = None, n_dims_per_step: int = -1) -> None:
        """Create the loss.

        Args:
            model: the model being trained; its embedding dimension bounds ``matryoshka_dims``.
            loss: the base loss, taken once per dimension.
            matryoshka_dims: embedding sizes to train, e.g. ``[384, 256, 128, 64]``.
            matryoshka_weights: one weight per dimension (default 1 each).
            n_dims_per_step: dimensions used per step (−1 or ≥ their number: all).

        Raises:
            ConfigError: no dimensions, one not above 0 or above the model's, or weights of another length.
        """
        super().__init__()
        dims = [int(dim) for dim in matryoshka_dims]
        if not dims:
            raise ConfigError("MatryoshkaLoss needs at least one dimension in matryoshka_dims")
        if any(dim <= 0 for dim in dims):
            raise ConfigError(f"matryoshka_dims must all be above 0, got {dims}")
        weights = [1.0] * len(dims) if matryoshka_weights is None else [float(w) for w in matryoshka_weights]
        if len(weights) != len(dims):
            raise ConfigError(f"matryoshka_weights has {len(weights)} weights for {len(dims)} matryoshka_dims")
        if not all(math.isfinite(weight) for weight in weights):
            raise ConfigError(f"matryoshka_weights must be finite numbers, got {weights}")
        full = _embedding_dimension(model)
        if full is not None:
            if max(dims) > full:
                raise ConfigError(f"matryoshka_dims {dims} go beyond the model's embedding dimension of {full}")
            if full not in dims:
                logger.warning("matryoshka_dims %s leave out the model's full dimension %d, so it is not trained "
                               "as such; include %d unless the model will only be used shortened", dims, full, full)
        ordered = sorted(zip(dims, weights, strict=True), key=lambda pair: pair[0], reverse=True)
        self.matryoshka_dims = tuple(dim for dim, _ in ordered)
        self.matryoshka_weights = tuple(weight for _, weight in ordered)
        self.n_dims_per_step = int(n_dims_per_step)
        self.model = model
        self.loss = loss

    @property
    def in_batch_negatives(self) -> bool:
        """The base loss's kind: the loop feeds text ids to an in-batch-negative loss, scores otherwise."""
        return bool(getattr(self.loss, "in_batch_negatives", False))

    @property
    def per_pair(self) -> bool:
        """A per-pair base loss stays per-pair when every step takes all dimensions; a random subset per
        call could differ between the chunks of one step (``sentsim.training.chunks``)."""
        return bool(getattr(self.loss, "per_pair", False)) and not self._samples

    @property
    def mini_batch_size(self) -> int | None:
        """The base loss's texts per forward pass (a cached loss's), which the loop's chunking follows."""
        return getattr(self.loss, "mini_batch_size", None)

    @property
    def _samples(self) -> bool:
        return 0 < self.n_dims_per_step < len(self.matryoshka_dims)

    def forward(self, *arguments: Any, **keywords: Any) -> Tensor:
        """The weighted sum of the base loss over the slices (the dimensions drawn for this step)."""
        indices = range(len(self.matryoshka_dims))
        if self._samples:
            indices = sorted(torch.randperm(len(self.matryoshka_dims))[: self.n_dims_per_step].tolist())
        total: Tensor | None = None
        for index in indices:
            dim, weight = self.matryoshka_dims[index], self.matryoshka_weights[index]
            sliced = [_shrink(argument, dim) for argument in arguments]
            term = weight * self.loss(*sliced, **keywords)
            total = term if total is None else total + term
        assert total is not None  # at least one dimension, checked when built
        return total

    def get_config_dict(self) -> dict[str, Any]:
        """What sentence-transformers' model cards show of this loss."""
        return {"loss": type(self.loss).__name__, "matryoshka_dims": self.matryoshka_dims,
                "matryoshka_weights": self.matryoshka_weights, "n_dims_per_step": self.n_dims_per_step}


def _shrink(argument: Any, dim: int) -> Any:
    """An embedding matrix's first ``dim`` columns at unit length; labels, None and the rest as they are."""
    if not isinstance(argument, Tensor) or argument.ndim != 2 or not argument.is_floating_point():
        return argument
    if dim > argument.shape[-1]:
        raise ConfigError(f"matryoshka dimension {dim} is above the embeddings' {argument.shape[-1]}")
    return F.normalize(argument[:, :dim], p=2, dim=-1)


def _embedding_dimension(model: nn.Module | None) -> int | None:
    for name in ("get_sentence_embedding_dimension", "get_embedding_dimension"):
        method = getattr(model, name, None)
        if callable(method):
            return method()
    return None
