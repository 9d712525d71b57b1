"""Checks the losses share."""

from __future__ import annotations

import math

from sentsim.errors import ConfigError

__all__ = ["check_scale"]


def check_scale(scale: float) -> float:
    """A ranking loss's inverse temperature: a positive finite number (a user's setting, so a ConfigError)."""
    if not (isinstance(scale, int | float) and math.isfinite(scale) and scale > 0):
        raise ConfigError(f"loss scale must be a positive finite number, got {scale!r}")
    return float(scale)
