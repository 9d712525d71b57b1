"""Output quantisation of embeddings (float32 / int8 / uint8 / binary / ubinary) and dimension truncation.

This is sentence-transformers' ``precision`` option of ``encode``: it changes the *stored* embedding,
not the arithmetic of the forward pass (that is sentsim's ``dtype``).
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import numpy as np

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
    """A float array; a tensor keeps its dtype (bfloat16, which numpy lacks, becomes float32).

    Never imports torch (a tensor can only exist once torch is loaded), so the ONNX backend quantises
    without it."""
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(embeddings, torch.Tensor):
        tensor = embeddings.detach()
        return (tensor.float() if tensor.dtype == torch.bfloat16 else tensor).cpu().numpy()
    return np.asarray(embeddings)


def _ranges(values: np.ndarray, precision: str, calibration_embeddings: Any) -> np.ndarray:
    """Each dimension's (min, max), from ``calibration_embeddings`` if given, else from ``values``."""
    if calibration_embeddings is None:
        if values.ndim == 1 or values.shape[0] < 2:
            raise ValueError(f"cannot compute {precision} ranges from a single embedding; pass ranges= or "
                             "calibration_embeddings=")
        if values.shape[0] < 100:
            logger.warning("%s quantisation ranges from only %d embeddings are unstable; pass ranges= or "
                           "calibration_embeddings=", precision, values.shape[0])
        calibration_embeddings = values
    reference = np.asarray(calibration_embeddings)
    return np.vstack((reference.min(axis=0), reference.max(axis=0)))


def _quantize_matrices(matrices: list[np.ndarray], precision: str, ranges: np.ndarray | None,
                       calibration_embeddings: Any) -> list[np.ndarray]:
    """Multi-vector input (one (tokens, dim) matrix per text): one set of int8 ranges for all of them."""
    if precision.endswith("int8") and ranges is None:
        reference = np.concatenate(matrices, axis=0) if calibration_embeddings is None else calibration_embeddings
        if len(reference):
            ranges = _ranges(np.asarray(reference), precision, calibration_embeddings)
    return [quantize_embeddings(matrix, precision, ranges=ranges, calibration_embeddings=calibration_embeddings)
            for matrix in matrices]


def quantize_embeddings(embeddings: Any, precision: str, ranges: np.ndarray | None = None,
                        calibration_embeddings: np.ndarray | None = None) -> np.ndarray | list[np.ndarray]:
    """Embeddings in a smaller type: ``int8``/``uint8`` map each dimension's [min, max] onto 256 buckets
    (``ranges`` of shape (2, dim), else taken from ``calibration_embeddings``, else from ``embeddings``);
    ``binary``/``ubinary`` keep the sign bit, 8 dimensions per byte (``binary`` shifted into int8).
    A list of 2-D matrices (multi-vector embeddings) gives a list, quantised with shared ranges.
    """
    precision = check_output_precision(precision)
    if isinstance(embeddings, list):
        if not embeddings:
            return []
        items = [_to_numpy(item) for item in embeddings]
        if isinstance(items[0], np.ndarray) and items[0].ndim == 2:
            return _quantize_matrices(items, precision, ranges, calibration_embeddings)
        embeddings = np.array(items)
    values = _to_numpy(embeddings)
    if values.dtype in (np.int8, np.uint8):
        raise ValueError("embeddings to quantize must be floats, not int8 or uint8")
    if precision == "float32":
        return values.astype(np.float32)
    if values.ndim == 2 and values.shape[0] == 0:  # e.g. a fully masked multi-vector text: nothing to calibrate
        width = values.shape[1] if precision.endswith("int8") else (values.shape[1] + 7) // 8
        return np.zeros((0, width), dtype=np.uint8 if precision.startswith("u") else np.int8)
    if precision in ("binary", "ubinary"):
        packed = np.packbits(values > 0, axis=-1)
        return packed if precision == "ubinary" else (packed.astype(np.int16) - 128).astype(np.int8)
    if ranges is None:
        ranges = _ranges(values, precision, calibration_embeddings)
    ranges = np.asarray(ranges).astype(np.float32, copy=False)
    starts = ranges[0]
    steps = (ranges[1] - starts) / 255
    steps = np.where(steps == 0, 1, steps)
    buckets = np.clip(np.floor((values - starts) / steps), 0, 255)
    return buckets.astype(np.uint8) if precision == "uint8" else (buckets - 128).astype(np.int8)


def truncate_embeddings(embeddings: Any, truncate_dim: int | None) -> Any:
    """The first ``truncate_dim`` dimensions (Matryoshka-style); None keeps them all."""
    return embeddings if truncate_dim is None else embeddings[..., :truncate_dim]
