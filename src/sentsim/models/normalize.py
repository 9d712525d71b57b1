"""The optional last stage: L2-normalised sentence embeddings (cosine becomes a dot product)."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn


class Normalize(nn.Module):
    """Scales each sentence embedding to unit length; has no parameters and no config."""

    def forward(self, features: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        features["sentence_embedding"] = nn.functional.normalize(features["sentence_embedding"], p=2, dim=1)
        return features

    def save(self, folder: str | Path) -> None:
        # sentence-transformers writes an empty folder for this module; a missing one is tolerated.
        Path(folder).mkdir(parents=True, exist_ok=True)

    @classmethod
    def load(cls, folder: str | Path) -> Normalize:
        return cls()
