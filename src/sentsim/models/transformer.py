"""The token-embedding stage: a Hugging Face encoder and its tokenizer, wrapped as one module."""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
import pickle
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from sentsim.errors import ConfigError, ModelLoadError
from sentsim.models.sequence_limits import check_max_seq_length, position_limit
from sentsim.models.weights import check_weight_files, describe_unpickling_error

logger = logging.getLogger(__name__)

#: File that holds this module's own options, in the sentence-transformers layout.
CONFIG_NAME = "sentence_bert_config.json"


class Transformer(nn.Module):
    """Runs a pretrained encoder (``AutoModel``) and returns per-token embeddings.

    Tokenisation is split from padding on purpose: ``tokenize`` turns text into unpadded id
    lists once per dataset, and ``collate`` pads a batch only to its own longest sequence. That
    is what keeps short STS sentences (14 tokens on average) from paying for 128-token padding.
    """

    def __init__(
        self,
        model_name_or_path: str | Path,
        *,
        max_seq_length: int | None = None,
        do_lower_case: bool = False,
        local_files_only: bool | None = None,
        allow_pickle: bool = False,
    ) -> None:
        """Loads ``model_name_or_path``; pickle weights (``pytorch_model.bin``) only with ``allow_pickle``,
        and even then through torch's ``weights_only`` loader."""
        super().__init__()
        source = str(model_name_or_path)
        kwargs: dict[str, Any] = {}
        if local_files_only is not None:
            kwargs["local_files_only"] = local_files_only
        config, self.auto_model, self.tokenizer = _load_pretrained(source, kwargs, allow_pickle=allow_pickle)
        if not getattr(self.tokenizer, "is_fast", False):
            raise ModelLoadError(f"{source!r} has no fast (Rust) tokenizer; sentsim needs one")
        # Some exported tokenizers (the bundled all-MiniLM-L6-v2 among them) switch on fixed
        # padding to 128 tokens inside tokenizer.json; sentsim pads per batch instead.
        self.tokenizer.backend_tokenizer.no_padding()
        self.tokenizer.backend_tokenizer.no_truncation()
        #: (graph, input names, precision) once ``use_inference_graph`` is called; a tuple, not a module.
        self._inference_graph: tuple[Callable[..., torch.Tensor], tuple[str, ...], str] | None = None
        #: Longest input the position embeddings can take; ``max_seq_length`` may not exceed it.
        self.position_limit = position_limit(config)
        if max_seq_length is None:
            limits = [self.position_limit, getattr(self.tokenizer, "model_max_length", None)]
            limits = [limit for limit in limits if isinstance(limit, int) and 0 < limit < 100_000]
            max_seq_length = min(limits) if limits else 512
        self.max_seq_length = max_seq_length
        self.do_lower_case = do_lower_case

    @property
    def max_seq_length(self) -> int:
        """Inputs are truncated to this many tokens, special tokens included."""
        return self._max_seq_length

    @max_seq_length.setter
    def max_seq_length(self, value: int) -> None:
        self._max_seq_length = check_max_seq_length(value, self.position_limit)

    # -- text → ids ---------------------------------------------------------------------------
    def tokenize(self, texts: list[str]) -> list[list[int]]:
        """Token ids per text with special tokens, truncated to ``max_seq_length``, unpadded."""
        if self.do_lower_case:
            texts = [text.lower() for text in texts]
        encoded = self.tokenizer(
            texts,
            add_special_tokens=True,
            truncation=True,
            max_length=self.max_seq_length,
            padding=False,
            return_attention_mask=False,
            return_token_type_ids=False,
        )
        return encoded["input_ids"]

    def collate(self, ids: list[list[int]], *, pad_to_multiple_of: int | None = None) -> dict[str, torch.Tensor]:
        """Pads a batch of id lists to its longest member (rounded up to a multiple if asked)."""
        longest = max(len(row) for row in ids)
        if pad_to_multiple_of:
            rounded = -(-longest // pad_to_multiple_of) * pad_to_multiple_of
            longest = min(rounded, max(self.max_seq_length, longest))
        # A handful of numpy calls whatever the batch size, instead of three tensor writes per row: the
        # server runs one collate per forward beside other threads that need the GIL (4 % of a runner).
        lengths = np.fromiter(map(len, ids), dtype=np.int64, count=len(ids))
        mask = np.arange(longest) < lengths[:, None]
        input_ids = np.full((len(ids), longest), self.tokenizer.pad_token_id or 0, dtype=np.int64)
        input_ids[mask] = np.fromiter(itertools.chain.from_iterable(ids), dtype=np.int64, count=int(lengths.sum()))
        return {"input_ids": torch.from_numpy(input_ids), "attention_mask": torch.from_numpy(mask.astype(np.int64))}

    # -- ids → token embeddings ---------------------------------------------------------------
    def forward(self, features: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        inputs = {"input_ids": features["input_ids"], "attention_mask": features["attention_mask"]}
        if "token_type_ids" in features:
            inputs["token_type_ids"] = features["token_type_ids"]
        graph = getattr(self, "_inference_graph", None)  # absent on objects unpickled from older versions
        if graph is not None and self._graph_applies(features["input_ids"].device, set(inputs)):
            with torch.autocast(features["input_ids"].device.type, enabled=False):  # its casts are recorded
                features["token_embeddings"] = graph[0](*(inputs[name] for name in graph[1]))
            return features
        output = self.auto_model(**inputs, return_dict=True)
        features["token_embeddings"] = output.last_hidden_state
        return features

    def use_inference_graph(self, graph: Callable[..., torch.Tensor], *, inputs: tuple[str, ...],
                            precision: str) -> None:
        """Runs no-grad eval forwards under ``precision`` through ``graph`` (see ``sentsim.inference.graph``).

        ``graph`` takes the ``inputs`` tensors in that order and returns the last hidden states; it is
        kept outside the module tree, so it is neither saved nor counted among the parameters.
        """
        self._inference_graph = (graph, inputs, precision)

    def _graph_applies(self, device: torch.device, given: set[str]) -> bool:
        """Only where the graph was recorded: no gradients, eval mode, the same inputs and autocast."""
        _graph, names, precision = self._inference_graph
        if torch.is_grad_enabled() or self.training or set(names) != given:
            return False
        autocast = torch.is_autocast_enabled(device.type)
        if precision == "bf16":
            return autocast and torch.get_autocast_dtype(device.type) == torch.bfloat16
        return not autocast

    @property
    def embedding_dimension(self) -> int:
        return int(self.auto_model.config.hidden_size)

    def get_word_embedding_dimension(self) -> int:
        """sentence-transformers' name for ``embedding_dimension`` (what a Pooling is built with)."""
        return self.embedding_dimension

    # -- persistence ----------------------------------------------------------------------------
    def config_dict(self) -> dict[str, Any]:
        return {"max_seq_length": self.max_seq_length, "do_lower_case": self.do_lower_case}

    def save(self, folder: str | Path) -> None:
        """Writes weights (safetensors), the HF config, tokenizer files and this module's options."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        previous_max = self.tokenizer.model_max_length
        self.tokenizer.model_max_length = self.max_seq_length
        try:
            with _quiet_transformers():
                self.auto_model.save_pretrained(folder, safe_serialization=True)
                self.tokenizer.save_pretrained(folder)
        finally:
            self.tokenizer.model_max_length = previous_max
        _ensure_model_max_length(folder / "tokenizer_config.json", self.max_seq_length)
        (folder / CONFIG_NAME).write_text(json.dumps(self.config_dict(), indent=2) + "\n")

    @classmethod
    def load(cls, folder: str | Path, **kwargs: Any) -> Transformer:
        """Loads from a folder written by ``save`` (or by sentence-transformers)."""
        folder = Path(folder)
        options: dict[str, Any] = {}
        config_path = folder / CONFIG_NAME
        stored: dict[str, Any] = _read_module_config(config_path) if config_path.is_file() else {}
        if "do_lower_case" in stored:
            options["do_lower_case"] = stored["do_lower_case"]
        options.update(kwargs)
        transformer = cls(folder, local_files_only=True, **options)
        # Checked after loading because the allowed range comes from the model's own config.
        if stored.get("max_seq_length") is not None and "max_seq_length" not in kwargs:
            try:
                transformer.max_seq_length = stored["max_seq_length"]
            except ConfigError as error:
                raise ModelLoadError(f"{config_path}: {error}") from error
        return transformer


def _read_module_config(path: Path) -> dict[str, Any]:
    """This module's options file, refused with its name if it is not a JSON object of the right types."""
    try:
        stored = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ModelLoadError(f"{path}: not valid JSON ({error})") from error
    if not isinstance(stored, dict):
        raise ModelLoadError(f"{path}: expected a JSON object, found {type(stored).__name__}")
    if not isinstance(stored.get("do_lower_case", False), bool):
        raise ModelLoadError(f"{path}: do_lower_case must be true or false, got {stored['do_lower_case']!r}")
    return stored


def _load_pretrained(source: str, kwargs: dict[str, Any], *, allow_pickle: bool) -> tuple[Any, Any, Any]:
    """Config, model and tokenizer from ``source``, every failure a one-line ``ModelLoadError``."""
    from safetensors import SafetensorError
    from transformers import AutoConfig, AutoModel, AutoTokenizer

    folder = Path(source)
    if folder.is_dir():
        check_weight_files(folder, allow_pickle=allow_pickle)
    # use_safetensors=True makes transformers itself refuse pickle too (e.g. for a hub download).
    weights = {"weights_only": True} if allow_pickle else {"use_safetensors": True}
    try:
        with _quiet_transformers():
            config = AutoConfig.from_pretrained(source, **kwargs)
            model = AutoModel.from_pretrained(source, config=config, **weights, **kwargs)
            tokenizer = AutoTokenizer.from_pretrained(source, use_fast=True, **kwargs)
    except pickle.UnpicklingError as error:
        raise ModelLoadError(describe_unpickling_error(folder, error)) from error
    except (OSError, ValueError, SafetensorError) as error:
        raise ModelLoadError(f"cannot load a transformer from {source!r}: {error}") from error
    return config, model, tokenizer


@contextlib.contextmanager
def _quiet_transformers() -> Iterator[None]:
    """Hides transformers' own "Loading weights" bar: loading is instant and the bar clutters logs."""
    from transformers.utils import logging as hf_logging

    was_enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_enabled:
            hf_logging.enable_progress_bar()


def _ensure_model_max_length(path: Path, max_seq_length: int) -> None:
    """sentence-transformers reads the sequence limit from here too; keep both in agreement."""
    if not path.is_file():
        return
    config = json.loads(path.read_text())
    config["model_max_length"] = max_seq_length
    path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
