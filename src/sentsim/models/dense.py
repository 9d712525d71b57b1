"""A feed-forward layer on the sentence embedding (linear + activation), as sentence-transformers' Dense.

Several trained sentence-embedding models end in one: LaBSE (768 → 768, tanh, then Normalize),
distiluse-base-multilingual-cased (768 → 512, tanh). Continuing to train such a model, or serving it,
needs the layer; dropping it would give other vectors. Saved as theirs is (``config.json`` with the
activation's class path, ``model.safetensors`` with ``linear.weight`` / ``linear.bias``), so each
library reads the other's folders. Only torch's own activation classes are loaded: a class path from a
config is never imported from anywhere else (a model folder must not name code to run).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from sentsim.errors import ModelLoadError
from sentsim.models.dense_config import read_dense_config

#: The activations a Dense config may name (their class paths as sentence-transformers writes them).
ACTIVATIONS: dict[str, type[nn.Module]] = {
    f"torch.nn.modules.activation.{name}": getattr(nn, name)
    for name in ("Tanh", "ReLU", "GELU", "Sigmoid", "SiLU", "LeakyReLU", "ELU", "Softplus", "Mish", "Hardtanh")
} | {"torch.nn.modules.linear.Identity": nn.Identity}
_WEIGHTS = "model.safetensors"
_PICKLE_WEIGHTS = "pytorch_model.bin"


class Dense(nn.Module):
    """``sentence_embedding`` → ``activation(linear(sentence_embedding))``."""

    def __init__(self, in_features: int, out_features: int, *, bias: bool = True,
                 activation: nn.Module | None = None) -> None:
        super().__init__()
        self.in_features, self.out_features, self.bias = in_features, out_features, bias
        self.linear = nn.Linear(in_features, out_features, bias=bias)
        self.activation_function = activation if activation is not None else nn.Tanh()  # their default

    def forward(self, features: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        features["sentence_embedding"] = self.activation_function(self.linear(features["sentence_embedding"]))
        return features

    def config_dict(self) -> dict[str, Any]:
        kind = type(self.activation_function)
        return {"in_features": self.in_features, "out_features": self.out_features, "bias": self.bias,
                "activation_function": f"{kind.__module__}.{kind.__name__}"}

    def save(self, folder: str | Path) -> None:
        from safetensors.torch import save_file

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "config.json").write_text(json.dumps(self.config_dict(), indent=2) + "\n")
        save_file({name: tensor.detach().contiguous().cpu() for name, tensor in self.state_dict().items()},
                  str(folder / _WEIGHTS))

    @classmethod
    def load(cls, folder: str | Path, *, allow_pickle: bool = False) -> Dense:
        """Reads a Dense folder of sentsim or sentence-transformers; pickle weights (``pytorch_model.bin``,
        as older models ship them) only with ``allow_pickle``, and then through torch's weights-only loader."""
        folder = Path(folder)
        config = read_dense_config(folder, activations=ACTIVATIONS)
        dense = cls(config.in_features, config.out_features, bias=config.bias,
                    activation=ACTIVATIONS[config.activation]())
        try:
            dense.load_state_dict(_weights(folder, allow_pickle=allow_pickle))
        except RuntimeError as error:  # missing or misshapen tensors
            raise ModelLoadError(f"{folder}: the Dense weights do not fit its config ({error})") from None
        return dense


def _weights(folder: Path, *, allow_pickle: bool) -> dict[str, torch.Tensor]:
    from sentsim.models.weights import ALLOW_PICKLE_HINT, check_weight_files

    check_weight_files(folder, allow_pickle=allow_pickle)
    if (folder / _WEIGHTS).is_file():
        from safetensors.torch import load_file

        return load_file(str(folder / _WEIGHTS))
    if (folder / _PICKLE_WEIGHTS).is_file():
        if not allow_pickle:  # pragma: no cover - check_weight_files refused it already
            raise ModelLoadError(f"{folder / _PICKLE_WEIGHTS}: pickle weights; {ALLOW_PICKLE_HINT}")
        return torch.load(folder / _PICKLE_WEIGHTS, map_location="cpu", weights_only=True)
    raise ModelLoadError(f"{folder}: the Dense module has no weights ({_WEIGHTS} or {_PICKLE_WEIGHTS})")
