"""The embedding stage: sentences → embeddings, fast, in input order, with no gradients."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Literal

import numpy as np
import torch

from sentsim.errors import ConfigError
from sentsim.inference.forward import (
    PROGRESS_THRESHOLD,
    Precision,
    autocast_context,
    length_sorted_batches,
    resolve_precision,
)
from sentsim.progress import progress_bar

if TYPE_CHECKING:
    from sentsim.encoders.bi_encoder import SentenceTransformer

def encode(
    model: SentenceTransformer,
    sentences: str | Sequence[str],
    *,
    batch_size: int = 32,
    normalize: bool = False,
    convert_to: Literal["numpy", "torch"] = "numpy",
    precision: Precision = "auto",
    show_progress: bool | None = None,
) -> np.ndarray | torch.Tensor:
    """Embeds ``sentences``; one string gives one vector, a list gives a (n, dim) matrix."""
    single = isinstance(sentences, str)
    texts = [sentences] if single else list(sentences)
    if batch_size < 1:
        raise ConfigError(f"batch_size must be positive, got {batch_size}")
    if any(not isinstance(text, str) for text in texts):
        raise ConfigError("encode takes strings only")
    device = model.device
    mode = resolve_precision(precision, device)
    dimension = model.embedding_dimension
    output = torch.empty((len(texts), dimension), dtype=torch.float32)
    if texts:
        ids = model.tokenize(texts)
        quiet = not show_progress if show_progress is not None else len(texts) < PROGRESS_THRESHOLD
        batches = list(length_sorted_batches([len(row) for row in ids], batch_size))
        was_training = model.training
        model.eval()
        try:
            with torch.inference_mode(), autocast_context(mode, device):
                for batch in progress_bar(batches, desc="Encoding", unit="batch", quiet=quiet):
                    features = model.collate([ids[index] for index in batch])
                    features = {name: tensor.to(device) for name, tensor in features.items()}
                    embeddings = model(features)["sentence_embedding"]
                    output[batch] = embeddings.float().cpu()
        finally:
            model.train(was_training)
    if normalize:
        output = torch.nn.functional.normalize(output, p=2, dim=1)
    result: np.ndarray | torch.Tensor = output if convert_to == "torch" else output.numpy()
    return result[0] if single else result


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
