"""Output quantisation of embeddings (float32 / int8 / uint8 / binary / ubinary) and dimension truncation.

This is sentence-transformers' ``precision`` option of ``encode``: it changes the *stored* embedding,
not the arithmetic of the forward pass (that is sentsim's ``dtype``).
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import torch

logger = logging.getLogger(__name__)

OUTPUT_PRECISIONS = ("float32", "int8", "uint8", "binary", "ubinary")


def check_output_precision(precision: str | None) -> str:
    if precision is None:
        return "float32"
    if precision not in OUTPUT_PRECISIONS:
        raise ValueError(f"precision {precision!r} is not supported, must be one of {OUTPUT_PRECISIONS} "
                         "(for the compute dtype use dtype='auto', 'fp32' or 'bf16')")
    return precision


def _to_numpy(embeddings: Any) -> np.ndarray:
    if isinstance(embeddings, torch.Tensor):
        return embeddings.detach().float().cpu().numpy()
    if isinstance(embeddings, list) and embeddings and isinstance(embeddings[0], torch.Tensor):
        return torch.stack(embeddings).detach().float().cpu().numpy()
    return np.asarray(embeddings)


def quantize_embeddings(embeddings: Any, precision: str, ranges: np.ndarray | None = None,
                        calibration_embeddings: np.ndarray | None = None) -> np.ndarray:
    """Embeddings in a smaller type: ``int8``/``uint8`` map each dimension's [min, max] onto 256 buckets
    (``ranges`` of shape (2, dim), else taken from ``calibration_embeddings``, else from ``embeddings``);
    ``binary``/``ubinary`` keep the sign bit, 8 dimensions per byte (``binary`` shifted into int8).
    """
    precision = check_output_precision(precision)
    values = _to_numpy(embeddings)
    if values.dtype in (np.int8, np.uint8):
        raise ValueError("embeddings to quantize must be floats, not int8 or uint8")
    if precision == "float32":
        return values.astype(np.float32)
    if precision in ("binary", "ubinary"):
        packed = np.packbits(values > 0, axis=-1)
        return packed if precision == "ubinary" else (packed.astype(np.int16) - 128).astype(np.int8)
    if ranges is None:
        reference = values if calibration_embeddings is None else np.asarray(calibration_embeddings)
        if reference.ndim == 1 or reference.shape[0] < 2:
            raise ValueError(f"cannot compute {precision} ranges from a single embedding; pass ranges= or "
                             "calibration_embeddings=")
        if reference.shape[0] < 100:
            logger.warning("%s quantisation ranges from only %d embeddings are unstable; pass ranges= or "
                           "calibration_embeddings=", precision, reference.shape[0])
        ranges = np.vstack((reference.min(axis=0), reference.max(axis=0)))
    ranges = np.asarray(ranges, dtype=np.float32)
    starts = ranges[0]
    steps = (ranges[1] - starts) / 255
    steps = np.where(steps == 0, 1, steps)
    buckets = np.clip(np.floor((values - starts) / steps), 0, 255)
    return buckets.astype(np.uint8) if precision == "uint8" else (buckets - 128).astype(np.int8)


def truncate_embeddings(embeddings: Any, truncate_dim: int | None) -> Any:
    """The first ``truncate_dim`` dimensions (Matryoshka-style); None keeps them all."""
    return embeddings if truncate_dim is None else embeddings[..., :truncate_dim]
