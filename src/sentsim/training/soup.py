"""Weight averaging ("model soup", Wortsman et al., 2022) of models fine-tuned from the same start.

Runs that start from the same pretrained weights and differ only in seed (data order, dropout)
end in one low-loss basin; the average of their weights lies inside it and usually scores better
than any one of them, at the inference cost of a single model.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from sentsim.errors import ConfigError


def average_state_dicts(states: Sequence[dict[str, torch.Tensor]],
                        weights: Sequence[float] | None = None) -> dict[str, torch.Tensor]:
    """The (weighted) mean of state dicts with the same keys and shapes; integer buffers are copied.

    Integer tensors (position ids, token type ids) are not parameters and must not be averaged:
    they are taken from the first state, after checking all states agree on them.
    """
    if not states:
        raise ConfigError("averaging needs at least one model")
    if weights is None:
        weights = [1.0 / len(states)] * len(states)
    if len(weights) != len(states) or any(weight < 0 for weight in weights) or sum(weights) <= 0:
        raise ConfigError("averaging weights must be one non-negative number per model, not all zero")
    total = float(sum(weights))
    keys = list(states[0])
    for index, state in enumerate(states[1:], start=2):
        if list(state) != keys:
            raise ConfigError(f"model {index} has different weights from model 1: they cannot be averaged")
    averaged: dict[str, torch.Tensor] = {}
    for key in keys:
        tensors = [state[key] for state in states]
        if any(tensor.shape != tensors[0].shape for tensor in tensors):
            raise ConfigError(f"weight {key!r} has different shapes across models: they cannot be averaged")
        if not tensors[0].is_floating_point():
            if any(not torch.equal(tensor, tensors[0]) for tensor in tensors):
                raise ConfigError(f"buffer {key!r} differs across models: they cannot be averaged")
            averaged[key] = tensors[0].clone()
            continue
        mean = sum(tensor.detach().float() * (weight / total) for tensor, weight in zip(tensors, weights, strict=True))
        averaged[key] = mean.to(tensors[0].dtype)
    return averaged


def average_into(target: nn.Module, states: Sequence[dict[str, torch.Tensor]],
                 weights: Sequence[float] | None = None) -> nn.Module:
    """Loads the average of ``states`` into ``target`` (which must have the same architecture)."""
    target.load_state_dict(average_state_dicts(states, weights))
    return target
