"""Similarity functions over embeddings (sentence-transformers' ``util`` names): matrices and pairwise.

Inputs may be lists, numpy arrays or tensors, 1-D (one embedding) or 2-D; results are float tensors.
Distances are negated (``euclidean_sim``, ``manhattan_sim``) so that for every function larger means
more similar, as in sentence-transformers.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import Tensor

from sentsim.inference.similarity_any import SIMILARITY_FN_NAMES as SIMILARITY_FN_NAMES
from sentsim.inference.similarity_any import SimilarityFunction as SimilarityFunction
from sentsim.inference.similarity_any import check_similarity_fn_name as check_similarity_fn_name


def as_tensor(values: Any) -> Tensor:
    """A tensor view of a list, array or tensor; sub-fp32 floats go up to fp32 so scores do not tie."""
    if isinstance(values, Tensor):
        tensor = values
    elif isinstance(values, np.ndarray):
        tensor = torch.from_numpy(values) if values.flags.writeable else torch.tensor(values)
    elif isinstance(values, list | tuple) and values and all(isinstance(item, Tensor) for item in values):
        tensor = torch.stack(list(values))
    elif isinstance(values, list | tuple) and values and all(isinstance(item, np.ndarray) for item in values):
        tensor = torch.from_numpy(np.stack(values))
    else:
        tensor = torch.tensor(values)
    if tensor.is_sparse:  # sparse embeddings (SPLADE-style) are scored densely, in fp32 as theirs are
        tensor = tensor.to_dense().float()
    if tensor.is_floating_point() and torch.finfo(tensor.dtype).bits < 32:
        tensor = tensor.float()
    return tensor


def _as_matrix(values: Any) -> Tensor:
    tensor = as_tensor(values)
    return tensor.unsqueeze(0) if tensor.ndim == 1 else tensor


def normalize_embeddings(embeddings: Tensor) -> Tensor:
    """Each embedding scaled to unit length (a zero vector stays zero)."""
    return torch.nn.functional.normalize(as_tensor(embeddings), p=2, dim=-1)


def cos_sim(a: Any, b: Any) -> Tensor:
    """``result[i, j]`` = cosine of ``a[i]`` and ``b[j]``."""
    return normalize_embeddings(_as_matrix(a)) @ normalize_embeddings(_as_matrix(b)).T


def dot_score(a: Any, b: Any) -> Tensor:
    """``result[i, j]`` = dot product of ``a[i]`` and ``b[j]``."""
    return _as_matrix(a) @ _as_matrix(b).T


def euclidean_sim(a: Any, b: Any) -> Tensor:
    """``result[i, j]`` = minus the euclidean distance of ``a[i]`` and ``b[j]``."""
    return -torch.cdist(_as_matrix(a), _as_matrix(b), p=2.0)


def manhattan_sim(a: Any, b: Any) -> Tensor:
    """``result[i, j]`` = minus the manhattan distance of ``a[i]`` and ``b[j]``."""
    return -torch.cdist(_as_matrix(a), _as_matrix(b), p=1.0)


def pairwise_dot_score(a: Any, b: Any) -> Tensor:
    """``result[i]`` = dot product of ``a[i]`` and ``b[i]``."""
    return (as_tensor(a) * as_tensor(b)).sum(dim=-1)


def pairwise_cos_sim(a: Any, b: Any) -> Tensor:
    """``result[i]`` = cosine of ``a[i]`` and ``b[i]``."""
    return pairwise_dot_score(normalize_embeddings(a), normalize_embeddings(b))


def pairwise_euclidean_sim(a: Any, b: Any) -> Tensor:
    """``result[i]`` = minus the euclidean distance of ``a[i]`` and ``b[i]``."""
    return -torch.linalg.vector_norm(as_tensor(a) - as_tensor(b), dim=-1)


def pairwise_manhattan_sim(a: Any, b: Any) -> Tensor:
    """``result[i]`` = minus the manhattan distance of ``a[i]`` and ``b[i]``."""
    return -(as_tensor(a) - as_tensor(b)).abs().sum(dim=-1)


MATRIX_FUNCTIONS: dict[str, Callable[[Any, Any], Tensor]] = {
    "cosine": cos_sim, "dot": dot_score, "euclidean": euclidean_sim, "manhattan": manhattan_sim,
}
PAIRWISE_FUNCTIONS: dict[str, Callable[[Any, Any], Tensor]] = {
    "cosine": pairwise_cos_sim, "dot": pairwise_dot_score, "euclidean": pairwise_euclidean_sim,
    "manhattan": pairwise_manhattan_sim,
}
