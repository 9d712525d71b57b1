"""The embedding stage: sentences → embeddings, fast, in input order, with no gradients."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Literal

import numpy as np
import torch

from sentsim.errors import ConfigError
from sentsim.inference.encode_args import refuse_non_strings
from sentsim.inference.forward import Precision, batched_forward

if TYPE_CHECKING:
    from sentsim.encoders.bi_encoder import SentenceTransformer

def encode(
    model: SentenceTransformer,
    sentences: str | Sequence[str],
    *,
    batch_size: int = 32,
    normalize: bool = False,
    convert_to: Literal["numpy", "torch"] = "numpy",
    dtype: Precision = "auto",
    show_progress: bool | None = None,
    truncate_dim: int | None = None,
    prompt_length: int | None = None,
) -> np.ndarray | torch.Tensor:
    """Embeds ``sentences``; one string gives one vector, a list gives a (n, dim) matrix.

    ``dtype`` is the compute type of the forward pass (``auto`` picks bf16 where the CPU/GPU runs
    it natively); the result is always float32. ``truncate_dim`` keeps the first dimensions, before
    ``normalize``. ``prompt_length``: the texts start with a prompt of that many tokens ([CLS] included),
    which a pooling with ``include_prompt=False`` leaves out (see ``prompt_token_count``).
    """
    single = isinstance(sentences, str)
    texts = [sentences] if single else list(sentences)
    ids = _checked_token_ids(model, texts, batch_size=batch_size)
    output = encode_token_ids(model, ids, batch_size=batch_size, dtype=dtype, show_progress=show_progress,
                              truncate_dim=truncate_dim, prompt_length=prompt_length)
    if normalize:
        output = torch.nn.functional.normalize(output, p=2, dim=1)
    result: np.ndarray | torch.Tensor = output if convert_to == "torch" else output.numpy()
    return result[0] if single else result


def encode_token_ids(
    model: SentenceTransformer,
    ids: Sequence[Sequence[int]],
    *,
    batch_size: int = 32,
    dtype: Precision = "auto",
    show_progress: bool | None = None,
    truncate_dim: int | None = None,
    run_overhead: int | None = None,
    prompt_length: int | None = None,
) -> torch.Tensor:
    """Embeddings (float32, input order) of texts already tokenised (ids cut to ``max_seq_length``).

    The server tokenises once, on its worker thread, to check lengths and budget batches, and then
    hands the ids here instead of the texts, with a ``run_overhead`` so its mixed batches are cut
    where padding costs most (``sentsim.inference.batches.length_sorted_batches``).
    """
    dimension = model.embedding_dimension if truncate_dim is None else min(truncate_dim, model.embedding_dimension)
    output = torch.empty((len(ids), dimension), dtype=torch.float32)

    def keep(batch: list[int], features: dict[str, torch.Tensor]) -> None:
        output[batch] = features["sentence_embedding"][:, :dimension].float().cpu()

    if ids:
        batched_forward(model, ids, _collate(model, prompt_length), keep, lengths=[len(row) for row in ids],
                        batch_size=batch_size, dtype=dtype, show_progress=show_progress, desc="Encoding",
                        run_overhead=run_overhead)
    return output


def prompt_token_count(model: SentenceTransformer, prompt: str | None) -> int | None:
    """How many leading tokens ``prompt`` puts before a text: its ids with the tokenizer's [CLS] but not a
    trailing special token ([SEP]), as sentence-transformers counts them for ``include_prompt=False``.
    None where nothing is to be left out (no prompt, or a pooling that includes it)."""
    pooling = model.pooling
    if not prompt or pooling is None or pooling.include_prompt:
        return None
    ids = model.token_ids([prompt])[0]
    special = set(getattr(model.tokenizer, "all_special_ids", ()) or ())
    return len(ids) - 1 if ids and ids[-1] in special else len(ids)


def _collate(model: SentenceTransformer, prompt_length: int | None) -> Callable[[list[list[int]]], dict]:
    """The model's collate, with ``prompt_length`` among the features when a prompt is to be left out."""
    if not prompt_length:
        return model.collate

    def collate(rows: list[list[int]]) -> dict[str, torch.Tensor]:
        features = model.collate(rows)
        features["prompt_length"] = torch.tensor(prompt_length)
        return features

    return collate


def _checked_token_ids(model: SentenceTransformer, texts: list[str], *, batch_size: int) -> list[list[int]]:
    """The texts' token ids, after refusing a non-positive batch size and anything but strings."""
    if batch_size < 1:
        raise ConfigError(f"batch_size must be positive, got {batch_size}")
    refuse_non_strings(texts)
    return model.token_ids(texts) if texts else []


def forward_in_batches(
    model: SentenceTransformer,
    texts: list[str],
    consume: Callable[[list[int], dict[str, torch.Tensor]], None],
    *,
    batch_size: int = 32,
    dtype: Precision = "auto",
    show_progress: bool | None = None,
    prompt_length: int | None = None,
) -> None:
    """Runs the model over ``texts`` longest first and hands each batch's outputs to ``consume``.

    ``consume(indices, features)`` gets the positions in ``texts`` and the model's output features
    (``sentence_embedding``, ``token_embeddings``, ``attention_mask`` …) for those rows.
    """
    ids = _checked_token_ids(model, texts, batch_size=batch_size)
    if not ids:
        return
    batched_forward(model, ids, _collate(model, prompt_length), consume, lengths=[len(row) for row in ids],
                    batch_size=batch_size, dtype=dtype, show_progress=show_progress, desc="Encoding")


def encode_pairs(
    model: SentenceTransformer,
    sentences1: Sequence[str],
    sentences2: Sequence[str],
    **options,
) -> tuple[np.ndarray, np.ndarray]:
    """Embeds both sides of a pair list, each distinct sentence once (STS sets repeat many)."""
    unique = list(dict.fromkeys([*sentences1, *sentences2]))
    position = {text: index for index, text in enumerate(unique)}
    embeddings = np.asarray(encode(model, unique, **options))
    first = embeddings[[position[text] for text in sentences1]]
    second = embeddings[[position[text] for text in sentences2]]
    return first, second
