"""The torch-free encoder: ONNX Runtime, ``tokenizers`` and numpy run a folder written by ``sentsim export``.

Tokenisation, length-sorted batching, pooling and normalisation follow the torch path
(``sentsim.inference.encode``) step for step, so the fp32 file gives the same embeddings to 1e-4;
the int8 files trade a little accuracy for speed (README: measured per variant). Its public
methods are sentence-transformers' (``encode`` with prompts, output values and output precisions,
``similarity``, ``encode_query`` …), so code written for ``SentenceTransformer(path, backend="onnx")``
runs on it; ``embed`` and ``encode_pairs`` are the plain-array calls sentsim's own code uses.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from sentsim.environment import onnx_isa, physical_cores
from sentsim.errors import ConfigError, ModelLoadError
from sentsim.inference.batches import PROGRESS_THRESHOLD, length_sorted_batches
from sentsim.inference.encode_args import (
    check_encode_options,
    quantized_rows,
    refuse_non_strings,
    returned,
    tensor_maker,
    texts_to_encode,
    with_st_fields,
)
from sentsim.inference.folder_config import read_pipeline_config
from sentsim.inference.onnx_files import find_onnx_file, open_session, read_manifest
from sentsim.inference.onnx_head import apply_head, load_dense_layers
from sentsim.inference.parallel_runs import run_pieces
from sentsim.inference.process_pool import PoolCalls, pool_aware
from sentsim.inference.prompts import PromptShortcuts, prompt_settings, resolve_prompt
from sentsim.inference.quantize import quantize_embeddings
from sentsim.inference.similarity_any import SimilarityCalls
from sentsim.inference.st_calls import StCalls
from sentsim.models.sequence_limits import check_max_seq_length
from sentsim.persistence.hub import resolve_model_path
from sentsim.persistence.model_config import read_model_config
from sentsim.progress import progress_bar

if TYPE_CHECKING:
    from sentsim.inference.calibration import IsotonicCalibration

__all__ = ["OnnxSentenceEncoder"]

#: One forward's outputs: input ids, attention mask, token embeddings, sentence embeddings.
Forward = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]


class OnnxSentenceEncoder(PromptShortcuts, SimilarityCalls, StCalls, PoolCalls):
    """A sentence encoder on ONNX Runtime: ``encode``, ``similarity`` and evaluation without torch.

    Args:
        model_name_or_path: a folder written by ``sentsim export`` (or sentence-transformers'
            ``backend="onnx"`` export), or a hub name of such a model.
        file_name: the ONNX file under ``onnx/`` to run; by default the one for this CPU's instruction
            set (int8 where the export has it); ``"fp32"`` for the fp32 graph.
        threads: cores to use; default the physical cores. Batches run that many at a time, one core
            each (``sentsim.inference.parallel_runs``); a call that is one batch runs on a second
            session, opened when first needed, that spreads each operator over the cores instead.
        prompts, default_prompt_name, similarity_fn_name, truncate_dim: sentence-transformers' model
            options; given ones win over those saved in the folder's ``config_sentence_transformers.json``.
    """

    backend = "onnx"
    device = "cpu"

    def get_backend(self) -> str:
        """sentence-transformers' name for ``backend``: ``"onnx"``."""
        return self.backend

    def __init__(self, model_name_or_path: str | Path, *, file_name: str | None = None,
                 threads: int | None = None, prompts: dict[str, str] | None = None,
                 default_prompt_name: str | None = None, similarity_fn_name: str | None = None,
                 truncate_dim: int | None = None) -> None:
        from tokenizers import Tokenizer

        from sentsim.inference.calibration import IsotonicCalibration

        self.name_or_path = str(model_name_or_path)
        self.folder = resolve_model_path(model_name_or_path)
        self.file = find_onnx_file(self.folder, file_name)
        self.config = read_pipeline_config(self.folder)
        self.dense = load_dense_layers(self.config.dense_folders)
        stored = read_model_config(self.folder)
        self.prompts, self.default_prompt_name = prompt_settings(stored, prompts, default_prompt_name)
        self.similarity_fn_name = similarity_fn_name or stored.get("similarity_fn_name")
        self.truncate_dim: int | None = truncate_dim if truncate_dim is not None else stored.get("truncate_dim")
        tokenizer_path = self.folder / "tokenizer.json"
        if not tokenizer_path.is_file():
            raise ModelLoadError(f"{self.folder} has no tokenizer.json (the fast tokenizer the ONNX backend needs)")
        self.tokenizer = Tokenizer.from_file(str(tokenizer_path))
        self.tokenizer.no_padding()
        self._max_seq_length = self.config.max_seq_length
        self.tokenizer.enable_truncation(max_length=self._max_seq_length)
        self.pad_id = self._pad_id()
        self._open_sessions()
        self.use_threads(threads if threads is not None else physical_cores())
        self.input_names = [item.name for item in self.session.get_inputs()]
        self.calibration: IsotonicCalibration | None = IsotonicCalibration.load(self.folder)
        self._dimension: int | None = None

    def _open_sessions(self) -> None:
        """The session the batches share, one core each; the lone-batch one opens when first needed."""
        self.session = open_session(self.file, threads=1)
        self._lone_session: Any = None
        self._opening = threading.Lock()

    def use_threads(self, threads: int) -> None:
        """Uses ``threads`` cores from now on (a pool's CPU workers share the cores this way)."""
        if threads < 1:
            raise ConfigError(f"threads must be at least 1, got {threads}")
        with self._opening:
            self.threads = threads
            self._lone_session = None  # one opened for another thread count is not kept

    def __getstate__(self) -> dict[str, Any]:
        """Pickles without the ONNX Runtime sessions (they cannot be); unpickling opens them again from
        the file, so a pool's worker processes get the same encoder."""
        state = {key: value for key, value in self.__dict__.items()
                 if key not in ("session", "_lone_session", "_opening")}
        state["tokenizer"] = self.tokenizer.to_str()
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        from tokenizers import Tokenizer

        self.__dict__.update(state)
        self.tokenizer = Tokenizer.from_str(state["tokenizer"])
        self._open_sessions()

    # -- what it is ---------------------------------------------------------------------------
    @property
    def max_seq_length(self) -> int:
        return self._max_seq_length

    @max_seq_length.setter
    def max_seq_length(self, value: int) -> None:
        """Texts are cut to ``value`` tokens from now on (sentence-transformers' ``model.max_seq_length = n``)."""
        self._max_seq_length = check_max_seq_length(value, self.config.position_limit)
        self.tokenizer.enable_truncation(max_length=self._max_seq_length)

    def get_max_seq_length(self) -> int:
        return self.max_seq_length

    def to(self, device: Any) -> OnnxSentenceEncoder:
        """``model.to("cpu")`` as in torch code (a no-op); any other device needs the torch backend."""
        self._check_compute("auto", device)
        return self

    def eval(self) -> OnnxSentenceEncoder:
        """Nothing to switch: the ONNX graph is inference only (kept so ``model.eval()`` calls run)."""
        return self

    @property
    def embedding_dimension(self) -> int:
        if self._dimension is None:
            self._dimension = int(self._forward(self.token_ids(["dimension probe"]))[3].shape[-1])
        return self._dimension

    def describe(self) -> str:
        """One line for logs: which file runs, and why (``onnx int8 model_qint8_avx2.onnx, CPU avx2``)."""
        manifest = read_manifest(self.file.parent).get("variants", {}).get(self.file.name, {})
        precision = manifest.get("precision") or ("int8" if "int8" in self.file.name else "fp32")
        return f"onnx {precision} ({self.file.name}; CPU {onnx_isa() or 'generic'})"

    def __repr__(self) -> str:
        return f"OnnxSentenceEncoder({self.name_or_path!r}, file={self.file.name!r})"

    # -- text → ids ---------------------------------------------------------------------------
    def token_ids(self, texts: Sequence[str]) -> list[list[int]]:
        """Token ids with special tokens, truncated to ``max_seq_length``, unpadded."""
        if self.config.do_lower_case:
            texts = [text.lower() for text in texts]
        return [encoding.ids for encoding in self.tokenizer.encode_batch(list(texts), add_special_tokens=True)]

    def tokenize(self, texts: Sequence[str]) -> dict[str, np.ndarray]:
        """sentence-transformers' ``tokenize``: the padded model inputs, as int64 numpy arrays."""
        if not len(texts):
            return {}  # as sentence-transformers (and the torch encoder) answer an empty list
        input_ids, attention_mask = self._padded(self.token_ids(texts))
        return {"input_ids": input_ids, "attention_mask": attention_mask,
                "token_type_ids": np.zeros_like(input_ids)}

    def _pad_id(self) -> int:
        padding = json.loads((self.folder / "tokenizer.json").read_text(encoding="utf-8")).get("padding") or {}
        if isinstance(padding.get("pad_id"), int):
            return padding["pad_id"]
        for token in ("[PAD]", "<pad>"):
            token_id = self.tokenizer.token_to_id(token)
            if token_id is not None:
                return token_id
        return 0

    # -- sentence-transformers' calls ---------------------------------------------------------------
    @pool_aware
    def encode(self, inputs: str | Sequence[str] | None = None, prompt_name: str | None = None,
               prompt: str | None = None, batch_size: int = 32, show_progress_bar: bool | None = None,
               output_value: str | None = "sentence_embedding", precision: str = "float32",
               convert_to_numpy: bool = True, convert_to_tensor: bool = False, device: str | None = None,
               normalize_embeddings: bool = False, truncate_dim: int | None = None,
               pool: dict[str, Any] | None = None, chunk_size: int | None = None, *,
               sentences: str | Sequence[str] | None = None, dtype: str = "auto", **kwargs: Any) -> Any:
        """Embeds texts with sentence-transformers' arguments and return types (as the torch model's ``encode``).

        ``precision`` quantises the output (float32, int8, uint8, binary, ubinary). The arithmetic is
        the loaded file's (see ``describe``), so ``dtype`` accepts only ``auto`` / ``fp32``, and
        ``device`` only the CPU. Tensors (``convert_to_tensor``, ``convert_to_numpy=False``, and the
        per-text ``output_value`` results) are torch's when torch is installed, numpy arrays without it.
        """
        self._check_compute(dtype, device)
        precision = check_encode_options(output_value=output_value, precision=precision, batch_size=batch_size)
        batch_size = int(batch_size)
        chosen = resolve_prompt(self.prompts, self.default_prompt_name, prompt, prompt_name)
        if chosen and not self.config.include_prompt:
            raise ConfigError(f"{self.folder}: its pooling leaves the prompt's tokens out (include_prompt: false), "
                              "which the onnx backend does not do: encode with the torch backend, or without a prompt")
        single, texts = texts_to_encode(inputs, sentences, prompt=chosen)
        refuse_non_strings(texts)
        truncate_dim = truncate_dim if truncate_dim is not None else self.truncate_dim
        if output_value != "sentence_embedding":
            rows = self._per_text_outputs(texts, output_value, batch_size=batch_size, show_progress=show_progress_bar,
                                          truncate_dim=truncate_dim)
            rows = quantized_rows(rows, precision=precision)
            return rows[0] if single else rows
        embeddings: Any = self.embed(texts, batch_size=batch_size, normalize=normalize_embeddings,
                                     show_progress=show_progress_bar, truncate_dim=truncate_dim)
        if texts and precision != "float32":
            embeddings = quantize_embeddings(embeddings, precision=precision)
        result = returned(embeddings, count=len(texts), convert_to_tensor=convert_to_tensor,
                          convert_to_numpy=convert_to_numpy, as_tensor=tensor_maker())
        return result[0] if single else result

    def _check_compute(self, dtype: str, device: Any) -> None:
        if dtype not in ("auto", "fp32"):
            raise ConfigError(f"the onnx backend runs {self.file.name} as exported; dtype {dtype!r} needs the torch "
                              "backend (--backend torch)")
        if device is not None and str(device) != "cpu":
            raise ConfigError(f"the onnx backend runs on the CPU; device {device!r} needs the torch backend")

    def _per_text_outputs(self, texts: list[str], output_value: str | None, *, batch_size: int,
                          show_progress: bool | None, truncate_dim: int | None) -> list[Any]:
        """Per text: its token embeddings (padding cut off), or with ``output_value=None`` every output."""
        ids = self.token_ids(texts)
        rows: list[Any] = [None] * len(ids)
        convert = tensor_maker()
        for batch, (input_ids, mask, tokens, embeddings) in self._runs(ids, batch_size=batch_size,
                                                                       show_progress=show_progress):
            if truncate_dim is not None:
                embeddings = embeddings[:, :truncate_dim]
            for position, index in enumerate(batch):
                if output_value == "token_embeddings":
                    rows[index] = convert(tokens[position, : len(ids[index])])
                else:
                    row = {"input_ids": convert(input_ids[position]), "attention_mask": convert(mask[position]),
                           "token_embeddings": convert(tokens[position]),
                           "sentence_embedding": convert(embeddings[position])}
                    rows[index] = with_st_fields(row, token_type_ids="token_type_ids" in self.input_names)
        return rows

    # -- sentsim's plain-array calls --------------------------------------------------------------
    def embed(self, texts: Sequence[str], *, batch_size: int = 32, normalize: bool = False,
              show_progress: bool | None = False, truncate_dim: int | None = None, dtype: str = "auto") -> np.ndarray:
        """float32 embeddings ``(len(texts), dim)`` of texts (no prompts): the server's and evaluation's call.

        ``truncate_dim`` keeps the first dimensions, before ``normalize`` (as the torch path)."""
        self._check_compute(dtype, None)
        if batch_size < 1:
            raise ConfigError(f"batch_size must be positive, got {batch_size}")
        output = self.embed_token_ids(self.token_ids(texts) if texts else [], batch_size=batch_size,
                                      show_progress=show_progress)
        if truncate_dim is not None:
            output = np.ascontiguousarray(output[:, :truncate_dim])
        if normalize:
            output = output / np.maximum(np.linalg.norm(output, axis=1, keepdims=True), 1e-12)
        return output

    def embed_token_ids(self, ids: Sequence[Sequence[int]], *, batch_size: int = 32,
                        show_progress: bool | None = False, run_overhead: int | None = None) -> np.ndarray:
        """Embeddings (pooled, normalised as configured) of texts already tokenised by :meth:`token_ids`;
        ``run_overhead``: cut batches where padding costs most (the server; see ``length_sorted_batches``)."""
        chunks = [(batch, forward[3]) for batch, forward in self._runs(ids, batch_size=batch_size,
                                                                       show_progress=show_progress,
                                                                       run_overhead=run_overhead)]
        width = chunks[0][1].shape[1] if chunks else (self._dimension or 0)
        output = np.empty((len(ids), width), dtype=np.float32)
        for batch, embeddings in chunks:
            output[batch] = embeddings
        return output

    def encode_pairs(self, sentences1: Sequence[str], sentences2: Sequence[str],
                     **options: Any) -> tuple[np.ndarray, np.ndarray]:
        """Embeds both sides of a pair list (``embed``'s options), each distinct sentence once."""
        unique = list(dict.fromkeys([*sentences1, *sentences2]))
        position = {text: index for index, text in enumerate(unique)}
        embeddings = self.embed(unique, **options)
        return embeddings[[position[text] for text in sentences1]], embeddings[[position[text] for text in sentences2]]

    def pair_cosine(self, sentences_a: str | Sequence[str], sentences_b: str | Sequence[str], *,
                    batch_size: int = 32) -> np.ndarray | float:
        """Cosine of each aligned text pair, in float64 (one float for two strings), as the torch model's."""
        return self._pair_scores(sentences_a, sentences_b, batch_size=batch_size, calibrated=False)

    def sts_score(self, sentences_a: str | Sequence[str], sentences_b: str | Sequence[str], *,
                  batch_size: int = 32) -> np.ndarray | float:
        """Calibrated 0–5 STS score of each aligned text pair (needs the folder's calibration)."""
        return self._pair_scores(sentences_a, sentences_b, batch_size=batch_size, calibrated=True)

    def _pair_scores(self, sentences_a: str | Sequence[str], sentences_b: str | Sequence[str], *, batch_size: int,
                     calibrated: bool) -> np.ndarray | float:
        from sentsim.inference.calibration import aligned_cosines, calibrated_scores, require_calibration

        single = isinstance(sentences_a, str) and isinstance(sentences_b, str)
        first = [sentences_a] if isinstance(sentences_a, str) else list(sentences_a)
        second = [sentences_b] if isinstance(sentences_b, str) else list(sentences_b)
        if len(first) != len(second):
            raise ConfigError(f"aligned pairs needed: {len(first)} vs {len(second)} sentences")
        calibration = require_calibration(self.calibration) if calibrated else None
        cosines = aligned_cosines(*self.encode_pairs(first, second, batch_size=batch_size, normalize=True))
        scores = calibrated_scores(cosines, calibration) if calibrated else cosines
        return float(scores[0]) if single else scores

    def save(self, path: str | Path, model_name: str | None = None, create_model_card: bool = True,
             train_datasets: list[str] | None = None, safe_serialization: bool = True) -> Path:
        """A copy of the model folder at ``path``, atomically, with this encoder's calibration (an ONNX
        folder cannot be re-serialised from memory: its files are copied as they are). sentence-transformers'
        arguments are taken: ``model_name`` becomes the id the copied card loads (its placeholder replaced),
        ``create_model_card=False`` leaves the card out; ``train_datasets`` only ever fed their card."""
        from sentsim.inference.calibration import CALIBRATION_FILE
        from sentsim.persistence.atomic import copy_directory
        from sentsim.persistence.card_text import with_model_id

        if not safe_serialization:
            raise ValueError("sentsim saves safetensors only: safe_serialization=False is not supported")
        replace = {CALIBRATION_FILE: self.calibration.to_json()} if self.calibration is not None else {}
        card = self.folder / "README.md"
        if model_name and create_model_card and card.is_file():
            self.model_card_data.set_model_id(model_name)
            replace["README.md"] = with_model_id(card.read_text(encoding="utf-8"), model_name)
        return copy_directory(self.folder, path, replace_files=replace,
                              leave_out=() if create_model_card else ("README.md",))

    save_pretrained = save  # sentence-transformers' other name for it

    # -- the forward pass ------------------------------------------------------------------------
    def _runs(self, ids: Sequence[Sequence[int]], *, batch_size: int, show_progress: bool | None,
              run_overhead: int | None = None) -> Iterator[tuple[list[int], Forward]]:
        """``(batch, forward)`` for every length-sorted batch of ``ids``, in the order they finish.

        Several batches run ``threads`` at a time on the single-threaded session; a lone batch runs on
        the multi-threaded one. Either way each batch is the same batch, so the numbers are the same.
        """
        quiet = not show_progress if show_progress is not None else len(ids) < PROGRESS_THRESHOLD
        batches = list(length_sorted_batches([len(row) for row in ids], batch_size, run_overhead=run_overhead))
        session = self._lone() if len(batches) == 1 else self.session

        def run(batch: list[int]) -> Forward:
            return self._forward([ids[index] for index in batch], session=session)

        runs = run_pieces(batches, run, workers=self.threads)
        return iter(progress_bar(runs, total=len(batches), desc="Encoding", unit="batch", quiet=quiet))

    def _lone(self) -> Any:
        """The session for a call that is one batch: intra-op threads on every core (opened on first use;
        with one thread it is the shared session itself)."""
        if self.threads == 1:
            return self.session
        with self._opening:
            if self._lone_session is None:
                self._lone_session = open_session(self.file, threads=self.threads)
        return self._lone_session

    def _padded(self, batch: Sequence[Sequence[int]]) -> tuple[np.ndarray, np.ndarray]:
        longest = max((len(row) for row in batch), default=0)
        input_ids = np.full((len(batch), longest), self.pad_id, dtype=np.int64)
        attention_mask = np.zeros((len(batch), longest), dtype=np.int64)
        for row, sequence in enumerate(batch):
            input_ids[row, : len(sequence)] = sequence
            attention_mask[row, : len(sequence)] = 1
        return input_ids, attention_mask

    def _forward(self, batch: Sequence[Sequence[int]], *, session: Any = None) -> Forward:
        input_ids, attention_mask = self._padded(batch)
        feeds = {"input_ids": input_ids, "attention_mask": attention_mask}
        if "token_type_ids" in self.input_names:
            feeds["token_type_ids"] = np.zeros_like(input_ids)
        tokens = np.asarray((session or self.session).run(None, {name: feeds[name] for name in self.input_names})[0],
                            dtype=np.float32)
        embeddings = apply_head(tokens, attention_mask, modes=self.config.pooling_modes, dense=self.dense,
                                normalize=self.config.normalize)
        return input_ids, attention_mask, tokens, embeddings
