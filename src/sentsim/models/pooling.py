"""The pooling stage: token embeddings → one fixed-size sentence embedding."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from sentsim.errors import ModelLoadError
from sentsim.models.pooling_modes import ALIASES, LEGACY_KEYS, POOLING_MODES


def canonical_mode(name: str) -> str:
    """Accepts the spellings people type (``mean-sqrt-len``, ``last_token``) and returns ours."""
    mode = ALIASES.get(name.strip().lower(), name.strip().lower())
    if mode not in POOLING_MODES:
        raise ModelLoadError(f"unknown pooling mode {name!r}; choose from {', '.join(POOLING_MODES)}")
    return mode


class Pooling(nn.Module):
    """Pools token embeddings under the attention mask; several modes are concatenated.

    Padding positions never contribute, so a sentence gets the same embedding whatever else is
    in its batch — the property that lets encode sort by length without changing results.
    ``include_prompt=False`` leaves a prompt's tokens out too, when the features carry its
    ``prompt_length`` (encode puts it there when it puts a prompt before the texts).
    """

    def __init__(self, embedding_dimension: int, pooling_mode: str | Sequence[str] | None = None, *,
                 modes: str | tuple[str, ...] | list[str] | None = None, include_prompt: bool = True,
                 **legacy_flags: bool) -> None:
        """``modes`` (or sentence-transformers' ``pooling_mode``, or its booleans such as
        ``pooling_mode_mean_tokens=True``) name the pooling; mean when none is given."""
        super().__init__()
        unknown = set(legacy_flags) - set(LEGACY_KEYS.values())
        if unknown:
            raise TypeError(f"Pooling() got unexpected keyword arguments {sorted(unknown)}")
        flagged = [mode for mode, key in LEGACY_KEYS.items() if legacy_flags.get(key)]
        if sum(bool(given) for given in (modes, pooling_mode, flagged)) > 1:
            raise ModelLoadError("give the pooling once: modes, pooling_mode or the pooling_mode_* flags")
        modes = modes or pooling_mode or flagged or "mean"
        requested = (modes,) if isinstance(modes, str) else tuple(modes)
        if not requested:
            raise ModelLoadError("pooling needs at least one mode")
        chosen = {canonical_mode(mode) for mode in requested}
        self.modes = tuple(mode for mode in POOLING_MODES if mode in chosen)
        self.embedding_dimension = int(embedding_dimension)
        self.include_prompt = include_prompt

    @property
    def output_dimension(self) -> int:
        return self.embedding_dimension * len(self.modes)

    def get_sentence_embedding_dimension(self) -> int:
        """sentence-transformers' name for ``output_dimension``."""
        return self.output_dimension

    @property
    def pooling_mode(self) -> str | list[str]:
        """sentence-transformers' view of the modes: one name, or a list of several."""
        return self.modes[0] if len(self.modes) == 1 else list(self.modes)

    def forward(self, features: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        # Pool in fp32 whatever the encoder ran in: bf16 sums over many tokens lose digits.
        tokens = features["token_embeddings"].float()
        attention = features["attention_mask"]
        lengths = attention.sum(dim=1)
        if not self.include_prompt and "prompt_length" in features:
            # sentence-transformers' include_prompt=False: the prompt's tokens ([CLS] and the prompt; rows
            # are right-padded) are left out of the pooling, though the encoder saw them.
            attention = attention.clone()
            attention[:, : int(features["prompt_length"])] = 0
        mask = attention.to(tokens.dtype).unsqueeze(-1)
        pooled = []
        for mode in self.modes:
            if mode == "cls":
                pooled.append(tokens[:, 0])
            elif mode == "max":
                masked = tokens.masked_fill(mask == 0, torch.finfo(tokens.dtype).min)
                pooled.append(masked.max(dim=1).values)
            elif mode in ("mean", "mean_sqrt_len"):
                summed = (tokens * mask).sum(dim=1)
                count = mask.sum(dim=1).clamp(min=1e-9)
                pooled.append(summed / count if mode == "mean" else summed / count.sqrt())
            elif mode == "weightedmean":
                # Later tokens weigh more (position 1..n), as in SGPT's weighted mean pooling.
                positions = torch.arange(1, tokens.shape[1] + 1, device=tokens.device, dtype=tokens.dtype)
                weights = positions.view(1, -1, 1) * mask
                pooled.append((tokens * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1e-9))
            else:  # lasttoken: right padding, so the last real token sits at length - 1
                index = (lengths - 1).clamp(min=0)
                pooled.append(tokens[torch.arange(tokens.shape[0], device=tokens.device), index])
        features["sentence_embedding"] = pooled[0] if len(pooled) == 1 else torch.cat(pooled, dim=1)
        return features

    # -- persistence ----------------------------------------------------------------------------
    def config_dict(self) -> dict[str, Any]:
        """The legacy layout (``pooling_mode_*`` booleans) that every sentence-transformers reads."""
        config: dict[str, Any] = {"word_embedding_dimension": self.embedding_dimension}
        for mode in POOLING_MODES:
            config[LEGACY_KEYS[mode]] = mode in self.modes
        config["include_prompt"] = self.include_prompt
        return config

    def save(self, folder: str | Path) -> None:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "config.json").write_text(json.dumps(self.config_dict(), indent=2) + "\n")

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Pooling:
        """Reads both the legacy booleans and the newer ``pooling_mode`` / ``embedding_dimension`` form."""
        dimension = config.get("word_embedding_dimension", config.get("embedding_dimension"))
        if dimension is None:
            raise ModelLoadError("pooling config has no embedding dimension")
        if "pooling_mode" in config and isinstance(config["pooling_mode"], str | list):
            modes = config["pooling_mode"]
        else:
            modes = [mode for mode in POOLING_MODES if config.get(LEGACY_KEYS[mode])]
        return cls(int(dimension), modes=modes, include_prompt=bool(config.get("include_prompt", True)))

    @classmethod
    def load(cls, folder: str | Path) -> Pooling:
        path = Path(folder) / "config.json"
        try:
            return cls.from_config(json.loads(path.read_text()))
        except (OSError, json.JSONDecodeError) as error:
            raise ModelLoadError(f"{path}: cannot read pooling config ({error})") from error
