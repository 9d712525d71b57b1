"""sentence-transformers' ``encode`` arguments on sentsim's encoder: prompts, outputs, quantisation, types.

``SentenceTransformer.encode`` only delegates here, so the model class stays small. The compute
type of the forward pass is sentsim's ``dtype``; ``precision`` keeps sentence-transformers' meaning
(quantisation of the returned embeddings).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from sentsim.inference.encode import encode, forward_in_batches, prompt_token_count
from sentsim.inference.encode_args import (
    check_encode_options,
    quantized_rows,
    returned,
    texts_to_encode,
    with_st_fields,
)
from sentsim.inference.quantize import quantize_embeddings

if TYPE_CHECKING:
    from sentsim.encoders.bi_encoder import SentenceTransformer

logger = logging.getLogger(__name__)


def encode_compatible(model: SentenceTransformer, inputs: str | Sequence[str] | None, *, sentences: Any,
                      prompt: str | None, batch_size: int, show_progress_bar: bool | None, output_value: str | None,
                      precision: str | None, convert_to_numpy: bool, convert_to_tensor: bool,
                      normalize_embeddings: bool, truncate_dim: int | None, dtype: str) -> Any:
    """Embeddings with sentence-transformers' return conventions (see ``SentenceTransformer.encode``)."""
    precision = check_encode_options(output_value=output_value, precision=precision, batch_size=batch_size)
    batch_size = int(batch_size)  # numpy's integers too, as sentence-transformers takes them
    single, texts = texts_to_encode(inputs, sentences, prompt=prompt)
    prompt_length = prompt_token_count(model, prompt)
    if output_value != "sentence_embedding":
        rows = _per_row_outputs(model, texts, output_value, batch_size=batch_size, dtype=dtype,
                                show_progress=show_progress_bar, truncate_dim=truncate_dim,
                                prompt_length=prompt_length)
        rows = quantized_rows(rows, precision=precision)
        return rows[0] if single else rows
    embeddings = encode(model, texts, batch_size=batch_size, convert_to="torch", dtype=dtype,
                        show_progress=show_progress_bar, truncate_dim=truncate_dim,
                        normalize=normalize_embeddings, prompt_length=prompt_length)
    result: Any = embeddings
    if len(texts) and precision != "float32":
        result = quantize_embeddings(embeddings, precision=precision)
    result = returned(result, count=len(texts), convert_to_tensor=convert_to_tensor,
                      convert_to_numpy=convert_to_numpy, as_tensor=torch.as_tensor)
    return result[0] if single else result


def _per_row_outputs(model: SentenceTransformer, texts: list[str], output_value: str | None, *, batch_size: int,
                     dtype: str, show_progress: bool | None, truncate_dim: int | None,
                     prompt_length: int | None = None) -> list[Any]:
    """Per text: its token embeddings (padding cut off), or with ``output_value=None`` every output feature."""
    rows: list[Any] = [None] * len(texts)
    token_type_ids = "token_type_ids" in getattr(model.tokenizer, "model_input_names", ())

    def keep(batch: list[int], features: dict[str, torch.Tensor]) -> None:
        if truncate_dim is not None:
            features["sentence_embedding"] = features["sentence_embedding"][:, :truncate_dim]
        for position, index in enumerate(batch):
            if output_value == "token_embeddings":
                length = int(features["attention_mask"][position].sum())
                rows[index] = features["token_embeddings"][position, :length].float().cpu()
            else:
                row = {name: value[position].cpu() if isinstance(value, torch.Tensor) and value.ndim
                       and value.shape[0] == len(batch) else value for name, value in features.items()}
                rows[index] = with_st_fields(row, token_type_ids=token_type_ids)

    forward_in_batches(model, texts, keep, batch_size=batch_size, dtype=dtype, show_progress=show_progress,
                       prompt_length=prompt_length)
    return rows


def aligned_pair_cosines(model: SentenceTransformer, sentences_a: str | Sequence[str],
                         sentences_b: str | Sequence[str], *, batch_size: int = 32,
                         dtype: str = "auto") -> np.ndarray | float:
    """Cosine of ``(sentences_a[i], sentences_b[i])`` per pair, in float64; one float for two strings."""
    from sentsim.errors import ConfigError
    from sentsim.inference.calibration import aligned_cosines
    from sentsim.inference.encode import encode_pairs

    single = isinstance(sentences_a, str) and isinstance(sentences_b, str)
    first = [sentences_a] if isinstance(sentences_a, str) else list(sentences_a)
    second = [sentences_b] if isinstance(sentences_b, str) else list(sentences_b)
    if len(first) != len(second):
        raise ConfigError(f"aligned pairs needed: {len(first)} vs {len(second)} sentences")
    embeddings_a, embeddings_b = encode_pairs(model, first, second, batch_size=batch_size, normalize=True,
                                              dtype=dtype)
    cosines = aligned_cosines(embeddings_a, embeddings_b)
    return float(cosines[0]) if single else cosines
