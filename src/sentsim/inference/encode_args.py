"""sentence-transformers' ``encode`` arguments, checked one way for both backends (no torch here).

The torch model and the ONNX encoder take the same arguments; reading and refusing them in one place
keeps their errors and their handling of strings, lists, arrays and prompts the same.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from sentsim.environment import torch_installed
from sentsim.errors import ConfigError
from sentsim.inference.quantize import check_output_precision, quantize_embeddings

#: ``encode``'s ``output_value`` choices, as sentence-transformers'.
OUTPUT_VALUES = ("sentence_embedding", "token_embeddings", None)


def texts_to_encode(inputs: str | Sequence[str] | Any, sentences: str | Sequence[str] | Any = None, *,
                    prompt: str | None = None) -> tuple[bool, list[str]]:
    """(one string given?, the texts with ``prompt`` prepended); ``sentences`` is the older keyword."""
    if inputs is None:
        if sentences is None:
            raise TypeError("encode() missing the texts to embed (inputs)")
        inputs = sentences
    single = isinstance(inputs, str)
    texts = [inputs] if single else (inputs.tolist() if isinstance(inputs, np.ndarray) else list(inputs))
    if prompt:
        texts = [prompt + text for text in texts]
    return single, texts


def refuse_non_strings(texts: list[Any]) -> None:
    """ConfigError unless every input is a string. A (text, text) pair gets its own advice: sentence-
    transformers 6 would embed it as one sequence (``[CLS] a [SEP] b [SEP]``), which sentsim does not."""
    for index, text in enumerate(texts):
        if isinstance(text, str):
            continue
        if isinstance(text, (tuple, list)):
            raise ConfigError(f"encode takes strings only; input {index} is a pair of texts: embed each text "
                              "and compare them with model.similarity_pairwise, or score pairs with a CrossEncoder")
        raise ConfigError(f"encode takes strings only; input {index} is a {type(text).__name__}")


def check_encode_options(*, output_value: str | None, precision: str | None, batch_size: Any) -> str:
    """ValueError for an unknown output value or precision, or a batch size that is not positive;
    returns the precision's plain name."""
    if output_value not in OUTPUT_VALUES:
        raise ValueError(f"output_value must be one of {OUTPUT_VALUES}, not {output_value!r}")
    precision = check_output_precision(precision)
    if output_value is None and precision != "float32":  # sentence-transformers fails on the feature dicts
        raise ValueError(f"precision={precision!r} quantises embeddings, and output_value=None returns every "
                         "feature of the forward: ask for output_value='token_embeddings' or 'sentence_embedding'")
    if isinstance(batch_size, bool) or not isinstance(batch_size, numbers.Integral) or batch_size <= 0:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size}")
    return precision


def returned(embeddings: Any, *, count: int, convert_to_tensor: bool, convert_to_numpy: bool,
             as_tensor: Callable[[Any], Any]) -> Any:
    """sentence-transformers' return type: a tensor, an array (``np.array([])`` for no texts) or a list
    of row tensors; ``as_tensor`` makes the tensors (torch's, or numpy's without torch)."""
    if convert_to_tensor:
        return as_tensor(embeddings) if count else as_tensor(np.array([], dtype=np.float32))
    if convert_to_numpy:
        return np.asarray(embeddings) if count else np.array([])
    return [as_tensor(row) for row in embeddings]


def quantized_rows(rows: list[Any], *, precision: str) -> list[Any]:
    """Per-text token embeddings in ``precision``, as sentence-transformers returns them: numpy matrices
    quantised with one set of int8 ranges for all tokens of all texts (float32 keeps the rows as they are)."""
    return rows if precision == "float32" or not rows else quantize_embeddings(rows, precision=precision)


def tensor_maker() -> Callable[[Any], Any]:
    """``torch.as_tensor`` where torch is installed, numpy's ``asarray`` where it is not (the light install)."""
    if not torch_installed():
        return np.asarray
    import torch

    return torch.as_tensor


def with_st_fields(row: dict[str, Any], *, token_type_ids: bool) -> dict[str, Any]:
    """An ``output_value=None`` row with the fields sentence-transformers' rows have besides the model's
    outputs: ``token_type_ids`` (all zeros: one sentence per input) for a tokenizer that makes them, and
    ``modality`` (``"text"``)."""
    if token_type_ids and "token_type_ids" not in row and "input_ids" in row:
        row["token_type_ids"] = row["input_ids"] * 0  # a tensor or an array alike, of the ids' type
    row.setdefault("modality", "text")
    return row
