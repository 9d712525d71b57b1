"""sentence-transformers' ``CrossEncoder.predict`` / ``rank`` arguments on sentsim's cross-encoder.

``predict`` scores each pair in the order given (sigmoid of the logit by default, as theirs does
for one-label models); sentsim's order-averaged score is ``CrossEncoder.score_pairs``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

if TYPE_CHECKING:
    from sentsim.encoders.cross_encoder import CrossEncoder


def predict_compatible(model: CrossEncoder, inputs: Any, *, batch_size: int, show_progress_bar: bool | None,
                       activation_fn: Callable | None, apply_softmax: bool | None, convert_to_numpy: bool,
                       convert_to_tensor: bool, dtype: str) -> Any:
    """One score per ``(text_a, text_b)`` pair; one pair (a 2-tuple of strings) gives one score."""
    if batch_size <= 0:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size}")
    single = isinstance(inputs, tuple | list) and len(inputs) == 2 and all(isinstance(text, str) for text in inputs)
    pairs = [inputs] if single else [tuple(pair) for pair in inputs]
    if any(len(pair) != 2 or not all(isinstance(text, str) for text in pair) for pair in pairs):
        raise ValueError("predict takes (text_a, text_b) pairs of strings")
    logits = model._logits([a for a, _ in pairs], [b for _, b in pairs], batch_size=batch_size, dtype=dtype,
                           show_progress=show_progress_bar)
    activation = activation_fn if activation_fn is not None else torch.sigmoid
    scores = activation(logits)  # one logit per pair: softmax over one label would be a constant 1
    del apply_softmax
    if convert_to_tensor:
        result: Any = scores
    elif convert_to_numpy:
        result = scores.float().numpy() if len(pairs) else np.array([])
    else:
        result = list(scores)
    return result[0] if single else result


def rank_compatible(model: CrossEncoder, query: str, documents: Sequence[str], *, top_k: int | None,
                    return_documents: bool, **options: Any) -> list[dict[str, Any]]:
    """Documents by decreasing score against ``query``: ``{"corpus_id", "score"[, "text"]}`` each."""
    scores = predict_compatible(model, [(query, document) for document in documents],
                                **{"convert_to_numpy": True, "convert_to_tensor": False, **options})
    order = sorted(range(len(documents)), key=lambda index: -float(scores[index]))
    ranked = []
    for index in order[:top_k]:
        entry: dict[str, Any] = {"corpus_id": index, "score": float(scores[index])}
        if return_documents:
            entry["text"] = documents[index]
        ranked.append(entry)
    return ranked
