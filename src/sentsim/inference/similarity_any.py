"""Similarity scores for the ONNX encoder: torch's functions when torch is installed, numpy's when not.

With torch present, ``OnnxSentenceEncoder.similarity`` returns exactly what the torch model's does (a
float tensor from ``sentsim.inference.similarity``), so sentence-transformers code that calls
``.numpy()`` or ``.item()`` on it works unchanged. The light install (``sentsim[onnx]``, no torch)
gets the same numbers as float32 numpy arrays from the functions below.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

import numpy as np

from sentsim.environment import torch_installed

#: The names ``similarity_fn_name`` accepts.
SIMILARITY_FN_NAMES = ("cosine", "dot", "euclidean", "manhattan")


class SimilarityFunction(StrEnum):
    """sentence-transformers' enum of similarity function names (a member compares equal to its name)."""

    COSINE = "cosine"
    DOT_PRODUCT = "dot"
    DOT = "dot"
    EUCLIDEAN = "euclidean"
    MANHATTAN = "manhattan"


def check_similarity_fn_name(name: Any) -> str:
    """The plain name of a similarity function (an enum's ``.value`` is accepted), or ValueError."""
    value = getattr(name, "value", name)
    if value == "dot_product":
        value = "dot"
    if value not in SIMILARITY_FN_NAMES:
        raise ValueError(f"similarity_fn_name must be one of {', '.join(SIMILARITY_FN_NAMES)}, not {name!r}")
    return value


def similarity_scores(a: Any, b: Any, name: str, *, pairwise: bool) -> Any:
    """``name``'s score matrix (``pairwise=False``) or aligned-pair scores of two sets of embeddings."""
    if torch_installed():
        from sentsim.inference.similarity import MATRIX_FUNCTIONS, PAIRWISE_FUNCTIONS

        return (PAIRWISE_FUNCTIONS if pairwise else MATRIX_FUNCTIONS)[name](a, b)
    first, second = _as_array(a), _as_array(b)
    if pairwise:
        if name == "cosine":
            first, second = _unit(first), _unit(second)
        if name in ("cosine", "dot"):
            return (first * second).sum(axis=-1)
        difference = first - second
        norm = np.abs(difference).sum(axis=-1) if name == "manhattan" else np.linalg.norm(difference, axis=-1)
        return -norm
    return similarity_matrix(first, second, name)


def similarity_matrix(a: Any, b: Any, name: str) -> np.ndarray:
    """``name``'s score matrix in numpy (float32, or float64 for float64 input), distances negated.

    Distances are taken a row of ``a`` at a time, so memory grows with ``b`` alone, not with
    ``len(a) × len(b) × dimensions``; the numbers are those of the whole difference tensor.
    """
    first, second = np.atleast_2d(_as_array(a)), np.atleast_2d(_as_array(b))
    if name == "cosine":
        return _unit(first) @ _unit(second).T
    if name == "dot":
        return first @ second.T
    if not len(first):
        return np.zeros((0, len(second)), dtype=np.result_type(first, second))
    return -np.stack([np.abs(second - row).sum(axis=-1) if name == "manhattan"
                      else np.linalg.norm(second - row, axis=-1) for row in first])


def _as_array(values: Any) -> np.ndarray:
    array = np.asarray(values)
    return array.astype(np.float32) if array.dtype != np.float64 else array


def _unit(values: np.ndarray) -> np.ndarray:
    """Unit rows (a zero row stays zero), as torch's ``normalize``."""
    return values / np.maximum(np.linalg.norm(values, axis=-1, keepdims=True), 1e-12)


class SimilarityCalls:
    """sentence-transformers' ``similarity`` / ``similarity_pairwise`` and ``similarity_fn_name``, for both
    encoders: tensors from torch's functions where torch is installed (``similarity_scores``)."""

    _similarity_fn_name: str

    @property
    def similarity_fn_name(self) -> str:
        """How ``similarity`` compares embeddings: cosine, dot, euclidean or manhattan."""
        return self._similarity_fn_name

    @similarity_fn_name.setter
    def similarity_fn_name(self, value: Any) -> None:
        self._similarity_fn_name = check_similarity_fn_name("cosine" if value is None else value)

    def similarity(self, embeddings1: Any, embeddings2: Any) -> Any:
        """Score matrix ``[len(embeddings1), len(embeddings2)]`` under ``similarity_fn_name``."""
        return similarity_scores(embeddings1, embeddings2, self.similarity_fn_name, pairwise=False)

    def similarity_pairwise(self, embeddings1: Any, embeddings2: Any) -> Any:
        """Score of each aligned pair ``(embeddings1[i], embeddings2[i])`` under ``similarity_fn_name``."""
        return similarity_scores(embeddings1, embeddings2, self.similarity_fn_name, pairwise=True)
