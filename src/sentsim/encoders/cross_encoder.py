"""The cross-encoder: one transformer reads both sentences together and outputs their similarity.

A cross-encoder sees every token of one sentence attend to every token of the other, so on STS it
scores pairs more accurately than a bi-encoder; but it must run once per *pair*, so it cannot embed
a corpus. sentsim uses it as a teacher: it labels extra "silver" pairs that the bi-encoder then
trains on (Augmented SBERT, Thakur et al., 2021; see ``augment``).

The network is the same ``Transformer`` module the bi-encoder uses, then mean pooling and a linear
head giving one logit; ``sigmoid(logit)`` is the similarity in 0–1, trained with binary
cross-entropy against the normalised gold score (the sentence-transformers CrossEncoder objective).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from sentsim.errors import ConfigError, ModelLoadError
from sentsim.inference.forward import batched_forward
from sentsim.models import Pooling, Transformer
from sentsim.persistence.cross_layout import CONFIG_FILE, HEAD_FILE, load_cross_encoder_parts, save_cross_encoder
from sentsim.persistence.hub import resolve_model_path
from sentsim.persistence.layout import load_transformer

__all__ = ["CONFIG_FILE", "HEAD_FILE", "CrossEncoder"]


class CrossEncoder(nn.Module):
    """Transformer over ``[CLS] a [SEP] b [SEP]`` → mean pooling → linear → one logit per pair."""

    def __init__(self, model_name_or_path: str | Path | Transformer | None = None, *,
                 head: nn.Linear | None = None, max_length: int | None = None, device: str | None = None) -> None:
        """``CrossEncoder(path)`` loads a saved sentsim cross-encoder (sentence-transformers' call);
        ``CrossEncoder(transformer, head=...)`` builds one from its parts.
        """
        super().__init__()
        if isinstance(model_name_or_path, str | Path):
            loaded = type(self).load(resolve_model_path(model_name_or_path))
            transformer, head = loaded.transformer, loaded.head
        elif isinstance(model_name_or_path, Transformer):
            transformer = model_name_or_path
        else:
            raise ModelLoadError("CrossEncoder needs a model folder (or a Transformer module)")
        if max_length is not None:
            transformer.max_seq_length = max_length
        self.transformer = transformer
        self.pooling = Pooling(transformer.embedding_dimension, modes="mean")
        self.head = head if head is not None else nn.Linear(transformer.embedding_dimension, 1)
        if device is not None:
            self.to(device)

    @classmethod
    def from_pretrained(cls, model_name_or_path: str | Path, *, seed: int = 42,
                        max_seq_length: int | None = None, allow_pickle: bool = False) -> CrossEncoder:
        """A new cross-encoder on a pretrained encoder; the head starts small so early steps stay stable.

        Given a sentence-transformers folder (like the bundled all-MiniLM-L6-v2), only its
        transformer is kept; its sentence-level training is a good start for reading pairs too.
        """
        transformer = load_transformer(resolve_model_path(model_name_or_path), max_seq_length=max_seq_length,
                                       allow_pickle=allow_pickle)
        generator = torch.Generator().manual_seed(seed)
        head = nn.Linear(transformer.embedding_dimension, 1)
        with torch.no_grad():
            head.weight.normal_(0.0, 0.02, generator=generator)
            head.bias.zero_()
        return cls(transformer, head=head)

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    @property
    def tokenizer(self) -> Any:
        return self.transformer.tokenizer

    # -- sentence-transformers' calls ---------------------------------------------------------
    def predict(self, inputs: Any, batch_size: int = 32, show_progress_bar: bool | None = None,
                activation_fn: Any = None, apply_softmax: bool | None = False, convert_to_numpy: bool = True,
                convert_to_tensor: bool = False, *, dtype: str = "auto") -> Any:
        """Score per (a, b) pair in the given order: sigmoid of the logit unless ``activation_fn`` is given."""
        from sentsim.inference.predict_api import predict_compatible

        return predict_compatible(self, inputs, batch_size=batch_size, show_progress_bar=show_progress_bar,
                                  activation_fn=activation_fn, apply_softmax=apply_softmax,
                                  convert_to_numpy=convert_to_numpy, convert_to_tensor=convert_to_tensor, dtype=dtype)

    def rank(self, query: str, documents: Sequence[str], top_k: int | None = None, return_documents: bool = False,
             batch_size: int = 32, show_progress_bar: bool | None = None, activation_fn: Any = None,
             apply_softmax: bool = False, *, dtype: str = "auto") -> list[dict[str, Any]]:
        """``documents`` by decreasing score against ``query``, as ``{"corpus_id", "score"[, "text"]}``."""
        from sentsim.inference.predict_api import rank_compatible

        return rank_compatible(self, query, documents, top_k=top_k, return_documents=return_documents,
                               batch_size=batch_size, show_progress_bar=show_progress_bar,
                               activation_fn=activation_fn, apply_softmax=apply_softmax, dtype=dtype)

    # -- pairs → ids ----------------------------------------------------------------------------
    def tokenize_pairs(self, sentences_a: Sequence[str],
                       sentences_b: Sequence[str]) -> list[tuple[list[int], list[int]]]:
        """(input ids, token type ids) per pair, truncating the longer side first, unpadded."""
        tokenizer = self.transformer.tokenizer
        texts_a, texts_b = list(sentences_a), list(sentences_b)
        if self.transformer.do_lower_case:
            texts_a, texts_b = [t.lower() for t in texts_a], [t.lower() for t in texts_b]
        if not texts_a:
            return []
        encoded = tokenizer(texts_a, texts_b, add_special_tokens=True, truncation="longest_first",
                            max_length=self.transformer.max_seq_length, padding=False,
                            return_attention_mask=False, return_token_type_ids=True)
        return list(zip(encoded["input_ids"], encoded["token_type_ids"], strict=True))

    def collate(self, rows: Sequence[tuple[list[int], list[int]]], *,
                pad_to_multiple_of: int | None = None) -> dict[str, torch.Tensor]:
        features = self.transformer.collate([ids for ids, _ in rows], pad_to_multiple_of=pad_to_multiple_of)
        token_types = torch.zeros_like(features["input_ids"])
        for row, (_, types) in enumerate(rows):
            token_types[row, : len(types)] = torch.as_tensor(types, dtype=torch.long)
        features["token_type_ids"] = token_types
        return features

    # -- ids → logits ---------------------------------------------------------------------------
    def forward(self, features: dict[str, torch.Tensor]) -> torch.Tensor:
        features = self.pooling(self.transformer(dict(features)))
        return self.head(features["sentence_embedding"]).squeeze(-1)

    def score_pairs(self, sentences_a: Sequence[str], sentences_b: Sequence[str], *, batch_size: int = 64,
                dtype: str = "auto", symmetric: bool = True, show_progress: bool | None = None) -> np.ndarray:
        """Similarity in 0–1 per pair. ``symmetric`` averages both sentence orders: the network
        itself is not symmetric, and averaging removes that order noise from silver labels.
        """
        if len(sentences_a) != len(sentences_b):
            raise ConfigError(f"predict needs as many first as second sentences ({len(sentences_a)} vs "
                              f"{len(sentences_b)})")
        if batch_size < 1:
            raise ConfigError(f"batch_size must be positive, got {batch_size}")
        scores = self._logits(sentences_a, sentences_b, batch_size=batch_size, dtype=dtype,
                              show_progress=show_progress)
        if symmetric:
            reverse = self._logits(sentences_b, sentences_a, batch_size=batch_size, dtype=dtype,
                                   show_progress=show_progress)
            scores = (torch.sigmoid(scores) + torch.sigmoid(reverse)) / 2
        else:
            scores = torch.sigmoid(scores)
        return scores.numpy().astype(np.float64)

    def _logits(self, sentences_a: Sequence[str], sentences_b: Sequence[str], *, batch_size: int, dtype: str,
                show_progress: bool | None) -> torch.Tensor:
        rows = self.tokenize_pairs(sentences_a, sentences_b)
        output = torch.empty(len(rows), dtype=torch.float32)

        def keep(batch: list[int], logits: torch.Tensor) -> None:
            output[batch] = logits.float().cpu()

        batched_forward(self, rows, lambda batch: self.collate(batch, pad_to_multiple_of=8), keep,
                        lengths=[len(ids) for ids, _ in rows], batch_size=batch_size, dtype=dtype,
                        show_progress=show_progress, desc="Scoring pairs")
        return output

    # -- persistence ----------------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        """Transformer files at the top (any HF tool can read the encoder), head and options beside them,
        written atomically (``persistence.cross_layout``)."""
        return save_cross_encoder(self.transformer, self.head, path)

    @classmethod
    def load(cls, path: str | Path) -> CrossEncoder:
        transformer, head = load_cross_encoder_parts(path)
        return cls(transformer, head=head)
