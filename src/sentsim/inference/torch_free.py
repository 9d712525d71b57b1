"""``sentsim.SentenceTransformer`` where torch is not installed: the ONNX backend, or a clear error.

Why: sentence-transformers code writes ``SentenceTransformer(path, backend="onnx")``. With
``pip install "sentsim[onnx]"`` (no torch) the real class cannot even be imported (it is a
``torch.nn.Module``), so the top level hands out this stand-in instead: ``backend="onnx"`` gives the
same :class:`~sentsim.inference.onnx_backend.OnnxSentenceEncoder` the real class would return, and
anything else says which extra to install.
"""

from __future__ import annotations

from typing import Any

from sentsim.errors import ConfigError, MissingDependencyError


class SentenceTransformer:
    """Only ``SentenceTransformer(folder, backend="onnx", ...)`` works without torch."""

    def __new__(cls, *args: Any, backend: str = "torch", **kwargs: Any) -> Any:
        if backend == "onnx":
            from sentsim.inference.onnx_loading import onnx_encoder_from_arguments

            return onnx_encoder_from_arguments(*args, **kwargs)
        if backend != "torch":
            raise ConfigError(f"backend must be 'torch' or 'onnx', not {backend!r}")
        raise MissingDependencyError(
            "SentenceTransformer with the torch backend needs torch, which is not installed: "
            "pip install \"sentsim[torch]\" (or pass backend=\"onnx\" for a folder written by `sentsim export`)")
