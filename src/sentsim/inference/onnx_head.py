"""What runs after the ONNX graph, in numpy: pooling, Dense layers and normalisation, as ``models`` does.

The ONNX graph holds the transformer only; pooling, Dense (the same linear + activation as
``models.Dense``) and normalisation run after it on the token embeddings, which is a few microseconds
per sentence, so LaBSE or distiluse run torch-free like any other model. Dense weights are read from
``model.safetensors`` with safetensors' numpy loader (no torch); a Dense folder with pickle weights
(``pytorch_model.bin``) is refused, since reading a pickle needs torch and may run code: ``sentsim
export`` writes safetensors.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sentsim.errors import ModelLoadError
from sentsim.models.dense_config import read_dense_config


def _gelu(values: np.ndarray) -> np.ndarray:
    from scipy.special import erf

    return 0.5 * values * (1.0 + erf(values / np.sqrt(2.0)))


def _softplus(values: np.ndarray) -> np.ndarray:
    return np.logaddexp(0.0, values)


#: torch's activation classes (as their Dense configs name them) in numpy, with torch's default parameters.
ACTIVATIONS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "torch.nn.modules.activation.Tanh": np.tanh,
    "torch.nn.modules.activation.ReLU": lambda x: np.maximum(x, 0.0),
    "torch.nn.modules.activation.GELU": _gelu,
    "torch.nn.modules.activation.Sigmoid": lambda x: 1.0 / (1.0 + np.exp(-x)),
    "torch.nn.modules.activation.SiLU": lambda x: x / (1.0 + np.exp(-x)),
    "torch.nn.modules.activation.LeakyReLU": lambda x: np.where(x >= 0, x, 0.01 * x),
    "torch.nn.modules.activation.ELU": lambda x: np.where(x > 0, x, np.expm1(np.minimum(x, 0.0))),
    "torch.nn.modules.activation.Softplus": _softplus,
    "torch.nn.modules.activation.Mish": lambda x: x * np.tanh(_softplus(x)),
    "torch.nn.modules.activation.Hardtanh": lambda x: np.clip(x, -1.0, 1.0),
    "torch.nn.modules.linear.Identity": lambda x: x,
}


@dataclass(frozen=True)
class NumpyDense:
    """``activation(vectors @ weight.T + bias)``."""

    weight: np.ndarray
    bias: np.ndarray | None
    activation: Callable[[np.ndarray], np.ndarray]

    def __call__(self, vectors: np.ndarray) -> np.ndarray:
        out = vectors @ self.weight.T
        if self.bias is not None:
            out = out + self.bias
        return np.asarray(self.activation(out), dtype=np.float32)


def apply_head(tokens: np.ndarray, mask: np.ndarray, *, modes: Sequence[str], dense: Sequence[NumpyDense],
               normalize: bool) -> np.ndarray:
    """Sentence embeddings from ``(batch, length, hidden)`` token embeddings: pooled, through each Dense layer,
    then scaled to unit length if the model normalises."""
    embeddings = pool(tokens, mask, modes)
    for layer in dense:
        embeddings = layer(embeddings)
    if normalize:
        embeddings = embeddings / np.maximum(np.linalg.norm(embeddings, axis=1, keepdims=True), 1e-12)
    return embeddings


def pool(tokens: np.ndarray, mask: np.ndarray, modes: Sequence[str]) -> np.ndarray:
    """Pools ``(batch, length, hidden)`` token embeddings under the mask, as ``models.Pooling`` does.

    The weighted sums are one batched matrix product each (``(batch, 1, length) @ tokens``): 6× faster
    than multiplying and summing the whole token tensor, and the same numbers to float rounding.
    """
    weights = mask.astype(np.float32)
    lengths = mask.sum(axis=1)
    pooled = []
    for mode in modes:
        if mode == "cls":
            pooled.append(tokens[:, 0])
        elif mode == "max":
            pooled.append(np.where(weights[..., None] > 0, tokens, np.finfo(np.float32).min).max(axis=1))
        elif mode in ("mean", "mean_sqrt_len"):
            summed = np.matmul(weights[:, None, :], tokens)[:, 0]
            count = np.maximum(weights.sum(axis=1, keepdims=True), 1e-9)
            pooled.append(summed / count if mode == "mean" else summed / np.sqrt(count))
        elif mode == "weightedmean":
            positional = np.arange(1, tokens.shape[1] + 1, dtype=np.float32)[None, :] * weights
            summed = np.matmul(positional[:, None, :], tokens)[:, 0]
            pooled.append(summed / np.maximum(positional.sum(axis=1, keepdims=True), 1e-9))
        else:  # lasttoken: right padding, so the last real token sits at length - 1
            pooled.append(tokens[np.arange(tokens.shape[0]), np.maximum(lengths - 1, 0)])
    return pooled[0] if len(pooled) == 1 else np.concatenate(pooled, axis=1)


def load_dense_layers(folders: Sequence[Path]) -> list[NumpyDense]:
    """The Dense layers stored in ``folders``, in pipeline order."""
    return [_load(folder) for folder in folders]


def _load(folder: Path) -> NumpyDense:
    config = read_dense_config(folder, activations=ACTIVATIONS, backend="the ONNX backend")
    weights_file = folder / "model.safetensors"
    if not weights_file.is_file():
        raise ModelLoadError(f"{folder}: the Dense weights are not in model.safetensors (a pickle needs torch); "
                             "export the model with `sentsim export`, which writes safetensors")
    try:
        from safetensors.numpy import load_file

        tensors = load_file(str(weights_file))
    except ImportError:
        raise ModelLoadError("reading a Dense layer needs safetensors: pip install \"sentsim[onnx]\"") from None
    except Exception as error:  # safetensors' own error type for a damaged file
        raise ModelLoadError(f"{weights_file}: not a valid safetensors file ({error})") from None
    weight = tensors.get("linear.weight")
    if weight is None or weight.ndim != 2 or weight.shape != (config.out_features, config.in_features):
        raise ModelLoadError(f"{weights_file}: the Dense weights do not fit its config")
    bias = tensors.get("linear.bias")
    return NumpyDense(weight=weight.astype(np.float32), bias=None if bias is None else bias.astype(np.float32),
                      activation=ACTIVATIONS[config.activation])
