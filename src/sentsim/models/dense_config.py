"""A Dense module's ``config.json``, read and checked once for both backends (torch and ONNX), without torch.

The config names its activation by class path; only torch's own activation classes are accepted, so a
model folder can never name code to run. What each backend can run is its own table of activations.
"""

from __future__ import annotations

import json
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

from sentsim.errors import ModelLoadError

#: sentence-transformers' default when a config names no activation.
DEFAULT_ACTIVATION = "torch.nn.modules.activation.Tanh"


@dataclass(frozen=True, kw_only=True)
class DenseConfig:
    in_features: int
    out_features: int
    bias: bool
    #: The activation's class path, as sentence-transformers writes it (one of the backend's table).
    activation: str


def read_dense_config(folder: Path, *, activations: Collection[str], backend: str = "sentsim") -> DenseConfig:
    """``folder/config.json`` as a DenseConfig, or a ModelLoadError naming the file and what is wrong:
    unreadable, not an object, a residual Dense, an activation ``backend`` does not run, bad sizes."""
    path = folder / "config.json"
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ModelLoadError(f"{path}: cannot read the Dense config ({error})") from None
    if not isinstance(config, dict):
        raise ModelLoadError(f"{path}: not a Dense config (a JSON object is expected)")
    if config.get("use_residual"):
        raise ModelLoadError(f"{path}: a Dense with use_residual is not supported by {backend}")
    name = config.get("activation_function", DEFAULT_ACTIVATION)
    if name not in activations:
        raise ModelLoadError(f"{path}: activation_function {name!r} is not supported by {backend} (torch's own: "
                             f"{', '.join(sorted(str(path).rsplit('.', 1)[1] for path in activations))})")
    try:
        sizes = int(config["in_features"]), int(config["out_features"])
    except (KeyError, TypeError, ValueError) as error:
        raise ModelLoadError(f"{path}: not a Dense config ({error!r})") from None
    if min(sizes) < 1:
        raise ModelLoadError(f"{path}: not a Dense config (in_features and out_features must be positive)")
    return DenseConfig(in_features=sizes[0], out_features=sizes[1], bias=bool(config.get("bias", True)),
                       activation=name)
