"""What the batching queue needs from a model, and the adapters that load one per backend."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Literal, Protocol, runtime_checkable

import numpy as np

from sentsim.errors import ConfigError

if TYPE_CHECKING:
    from sentsim.encoders.bi_encoder import SentenceTransformer
    from sentsim.inference.calibration import IsotonicCalibration
    from sentsim.inference.onnx_backend import OnnxSentenceEncoder

Backend = Literal["torch", "onnx"]
BACKENDS: tuple[str, ...] = ("torch", "onnx")


@runtime_checkable
class Engine(Protocol):
    """A loaded sentence encoder as the server sees it.

    ``embed`` is only ever called from the queue's single worker thread, so an engine need not be
    thread-safe; ``count_tokens`` is called on the event loop and must be cheap and side-effect free.
    """

    name: str
    max_seq_length: int
    embedding_dimension: int
    calibration: IsotonicCalibration | None

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        """Tokens per text, special tokens included, *before* truncation to ``max_seq_length``."""
        ...

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """``(len(texts), embedding_dimension)`` float32 embeddings, inputs truncated to ``max_seq_length``."""
        ...


class TorchEngine:
    """A :class:`~sentsim.encoders.bi_encoder.SentenceTransformer` behind the engine protocol.

    Embedding goes through :func:`sentsim.inference.encode.encode`, the function behind
    ``model.encode`` and ``sentsim encode``, so served vectors equal offline ones.
    """

    def __init__(self, model: SentenceTransformer, *, name: str, batch_size: int = 32) -> None:
        self.model = model
        self.name = name
        self.batch_size = batch_size
        self.calibration = model.calibration
        # A private copy of the Rust tokenizer for counting: the model's own one is stateful (each
        # transformers call switches its truncation on), and counting must see the untruncated length.
        from tokenizers import Tokenizer

        self._counter = Tokenizer.from_str(model.transformer.tokenizer.backend_tokenizer.to_str())
        self._counter.no_truncation()
        self._counter.no_padding()

    @property
    def max_seq_length(self) -> int:
        return self.model.max_seq_length

    @property
    def embedding_dimension(self) -> int:
        return self.model.embedding_dimension

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        if self.model.transformer.do_lower_case:
            texts = [text.lower() for text in texts]
        return [len(encoding.ids) for encoding in self._counter.encode_batch(list(texts), add_special_tokens=True)]

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        from sentsim.inference.encode import encode

        vectors = encode(self.model, list(texts), batch_size=self.batch_size, show_progress=False)
        return np.asarray(vectors, dtype=np.float32)


def model_name(model: str | Path) -> str:
    """The id clients send as ``model``: the folder or hub name as given, without a trailing slash."""
    return str(model).rstrip("/") or str(model)


def load_engine(model: str | Path, *, backend: str = "torch", batch_size: int = 32, name: str | None = None) -> Engine:
    """Loads ``model`` (a folder or hub name) for serving with the given backend; ``name`` is its served id."""
    name = name or model_name(model)
    if backend == "torch":
        from sentsim.encoders.bi_encoder import SentenceTransformer

        return TorchEngine(SentenceTransformer(model), name=name, batch_size=batch_size)
    if backend == "onnx":
        return _load_onnx_engine(model, batch_size=batch_size, name=name)
    raise ConfigError(f"backend must be one of {', '.join(BACKENDS)}, not {backend!r}")


class OnnxEngine:
    """An :class:`~sentsim.inference.onnx_backend.OnnxSentenceEncoder` (no torch) behind the engine protocol."""

    def __init__(self, encoder: OnnxSentenceEncoder, *, name: str, batch_size: int = 32) -> None:
        from tokenizers import Tokenizer

        self.encoder = encoder
        self.name = name
        self.batch_size = batch_size
        self.calibration = encoder.calibration
        self.max_seq_length = encoder.max_seq_length
        self.embedding_dimension = encoder.embedding_dimension  # probes the graph once, here, not mid-request
        # The encoder's own count_tokens switches its tokenizer's truncation off and on again, which
        # would race with the worker thread's tokenizing; counting gets its own copy instead.
        self._counter = Tokenizer.from_str(encoder.tokenizer.to_str())
        self._counter.no_truncation()
        self._counter.no_padding()
        self._lower = encoder.config.do_lower_case

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        if self._lower:
            texts = [text.lower() for text in texts]
        return [len(encoding.ids) for encoding in self._counter.encode_batch(list(texts), add_special_tokens=True)]

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        vectors = self.encoder.encode(list(texts), batch_size=self.batch_size, show_progress=False)
        return np.asarray(vectors, dtype=np.float32)


def _load_onnx_engine(model: str | Path, *, batch_size: int, name: str) -> Engine:
    from sentsim.inference.onnx_backend import OnnxSentenceEncoder

    return OnnxEngine(OnnxSentenceEncoder(model), name=name, batch_size=batch_size)
