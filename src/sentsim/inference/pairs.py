"""Encoding for any backend (the torch model or the ONNX encoder), importing torch only for the former."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


def encode_pairs(model: Any, sentences1: Sequence[str], sentences2: Sequence[str],
                 **options: Any) -> tuple[np.ndarray, np.ndarray]:
    """Embeds both sides of a pair list, each distinct sentence once.

    An encoder with its own ``encode_pairs`` (``OnnxSentenceEncoder``) runs it; the torch model goes
    through ``sentsim.inference.encode``, imported only then, so evaluation and scoring stay torch-free
    on the ONNX backend.
    """
    options = _truncated_as_the_model_is(model, options)
    own = getattr(model, "encode_pairs", None)
    if callable(own):
        return own(sentences1, sentences2, **options)
    from sentsim.inference.encode import encode_pairs as encode_pairs_torch

    return encode_pairs_torch(model, sentences1, sentences2, **options)


def encode_sentences(model: Any, sentences: Any, **options: Any) -> Any:
    """``encode``'s plain float32 rows for any backend: the ONNX encoder's ``embed``, else the torch path
    (imported only then)."""
    options = _truncated_as_the_model_is(model, options)
    if getattr(model, "backend", "torch") == "onnx":
        return model.embed(sentences, **options)
    from sentsim.inference.encode import encode

    return encode(model, sentences, **options)


def _truncated_as_the_model_is(model: Any, options: dict[str, Any]) -> dict[str, Any]:
    """A model loaded or set with ``truncate_dim`` gives that many dimensions here as its ``encode`` does
    (sentence-transformers' reading), unless the call names ``truncate_dim`` itself (None: all of them)."""
    if "truncate_dim" not in options and getattr(model, "truncate_dim", None) is not None:
        return {**options, "truncate_dim": model.truncate_dim}
    return options
