"""Named training recipes: a recipe fills the hyper-parameters a user did not set explicitly."""

from __future__ import annotations

from typing import Any

from ..errors import ConfigError

#: The classic SBERT STSb recipe from the original write-up (Reimers & Gurevych, 2019).
CLASSIC: dict[str, Any] = {
    "loss": "cosine", "batch_size": 16, "learning_rate": 2e-5, "epochs": 1, "warmup_ratio": 0.1,
    "weight_decay": 0.01, "evaluation_steps": 0, "patience": None,
}

#: The recipe ``sentsim train`` uses when none is named. See docs/results.md for how it was chosen.
DEFAULT: dict[str, Any] = dict(CLASSIC)

RECIPES: dict[str, dict[str, Any]] = {"default": DEFAULT, "classic": CLASSIC}


def recipe(name: str) -> dict[str, Any]:
    try:
        return dict(RECIPES[name])
    except KeyError:
        raise ConfigError(f"unknown recipe {name!r}; choose from {', '.join(RECIPES)}") from None
