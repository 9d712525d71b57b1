"""Encoding a text file, one sentence per line, into a ``.npy`` matrix (written atomically)."""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from sentsim.errors import ConfigError
from sentsim.inference.pairs import encode_sentences
from sentsim.persistence.atomic import atomic_write_bytes

if TYPE_CHECKING:
    from sentsim.encoders.bi_encoder import SentenceTransformer


@dataclass(frozen=True)
class EncodedFile:
    output: Path
    rows: int
    dimension: int


def read_sentence_file(path: str | Path) -> list[str]:
    """The non-blank lines of a UTF-8 text file.

    Raises:
        ConfigError: for a missing file, bytes that are not UTF-8, or no sentence at all.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"no such file: {path}")
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as error:
        raise ConfigError(f"{path}: not UTF-8 text ({error.reason} at byte {error.start})") from error
    sentences = [line for line in lines if line.strip()]
    if not sentences:
        raise ConfigError(f"{path}: no sentences (the file is empty)")
    return sentences


def default_output(path: str | Path) -> Path:
    """Where ``sentsim encode FILE`` writes without ``-o``: FILE with the ``.npy`` suffix."""
    return Path(path).with_suffix(".npy")


def encode_to_npy(
    model: SentenceTransformer,
    sentences: list[str],
    output: str | Path,
    *,
    batch_size: int = 64,
    normalize: bool = False,
    dtype: str = "auto",
    show_progress: bool | None = None,
) -> EncodedFile:
    """Embeds ``sentences`` and saves the float32 ``(len(sentences), dim)`` matrix to ``output``."""
    embeddings = np.asarray(encode_sentences(model, sentences, batch_size=batch_size, normalize=normalize,
                                             dtype=dtype, show_progress=show_progress))
    buffer = io.BytesIO()
    np.save(buffer, embeddings)
    atomic_write_bytes(output, buffer.getvalue())
    return EncodedFile(output=Path(output), rows=int(embeddings.shape[0]), dimension=int(embeddings.shape[1]))
