"""The torch-free encoder: ONNX Runtime, ``tokenizers`` and numpy run a folder written by ``sentsim export``.

Tokenisation, length-sorted batching, pooling and normalisation follow the torch path
(``sentsim.inference.encode``) step for step, so the fp32 file gives the same embeddings to 1e-4;
the int8 files trade a little accuracy for speed (README: measured per variant).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from sentsim.environment import onnx_isa, physical_cores
from sentsim.errors import ConfigError, ModelLoadError
from sentsim.inference.batches import PROGRESS_THRESHOLD, length_sorted_batches
from sentsim.inference.folder_config import read_pipeline_config
from sentsim.persistence.hub import resolve_model_path
from sentsim.progress import progress_bar

if TYPE_CHECKING:
    from sentsim.inference.calibration import IsotonicCalibration

__all__ = ["OnnxSentenceEncoder", "find_onnx_file", "has_onnx_files"]

ONNX_FOLDER = "onnx"
MANIFEST_FILE = "sentsim_onnx.json"
#: ORT graph rewrites refused at load. ``SkipLayerNormFusion`` turns ``Add`` + ``LayerNormalization`` into
#: one kernel that is 4–6× slower on the CPU (onnxruntime 1.32: 0.60–0.65 vs 0.09–0.15 ms for 500×384); the int8
#: files ran 1.37× faster without it, and sentence-transformers' own qint8 file 1.14× (README).
SESSION_DISABLED_OPTIMIZERS = ("SkipLayerNormFusion",)
_EXPORT_HINT = "run `sentsim export MODEL -o DIR` (add --quantize int8 for the fast int8 files) and load DIR"
#: Without a manifest (a folder from sentence-transformers / optimum), the int8 file for a CPU is looked for
#: under these names, best first.
_ISA_FILES = {
    "avx512_vnni": ("model_qint8_avx512_vnni.onnx", "model_qint8_avx512.onnx"),
    "avx512": ("model_qint8_avx512.onnx", "model_qint8_avx2.onnx"),
    "avx2": ("model_qint8_avx2.onnx",),
    "arm64": ("model_qint8_arm64.onnx",),
}


def has_onnx_files(folder: Path) -> bool:
    return (folder / ONNX_FOLDER / "model.onnx").is_file() or (folder / "model.onnx").is_file()


def find_onnx_file(folder: Path, file_name: str | None = None, *, isa: str | None = None) -> Path:
    """The ONNX file to run: ``file_name`` if given (``"fp32"``: the fp32 graph), else the one for this CPU.

    The export's manifest names a default per instruction set; a folder without one (written by
    sentence-transformers) gets the ``model_qint8_<isa>.onnx`` it holds for this CPU, else ``model.onnx``.
    """
    onnx_folder = folder / ONNX_FOLDER
    manifest = _read_manifest(onnx_folder)
    isa = onnx_isa() if isa is None else isa
    if file_name == "fp32":
        file_name = manifest.get("default", {}).get("fp32", "model.onnx")
    if file_name is not None:
        for candidate in (onnx_folder / file_name, folder / file_name):
            if candidate.is_file():
                return candidate
        raise ModelLoadError(f"{folder} has no ONNX file {file_name!r}; {_EXPORT_HINT}")
    chosen = manifest.get("default", {}).get(isa or "", None)
    names = [chosen] if chosen else list(_ISA_FILES.get(isa or "", ()))
    for name in [*names, "model.onnx"]:
        if (onnx_folder / name).is_file():
            return onnx_folder / name
    if (folder / "model.onnx").is_file():
        return folder / "model.onnx"
    raise ModelLoadError(f"{folder} has no ONNX model (looked for onnx/model.onnx); {_EXPORT_HINT}")


def open_session(file: Path, *, threads: int | None = None, save_optimized_to: Path | None = None) -> Any:
    """The encoder's ONNX Runtime session for ``file``: CPU, all of ORT's rewrites but the slow ones.

    ``save_optimized_to`` writes the graph as ORT rewrote it at load (for tests and inspection).
    """
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or physical_cores()
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if save_optimized_to is not None:
        options.optimized_model_filepath = str(save_optimized_to)
    try:
        return ort.InferenceSession(str(file), options, providers=["CPUExecutionProvider"],
                                    disabled_optimizers=list(SESSION_DISABLED_OPTIMIZERS))
    except Exception as error:  # ORT raises its own exception types for bad files
        raise ModelLoadError(f"{file}: ONNX Runtime cannot load it ({error})") from error


def _read_manifest(onnx_folder: Path) -> dict[str, Any]:
    path = onnx_folder / MANIFEST_FILE
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise ModelLoadError(f"{path}: not valid JSON ({error})") from error


class OnnxSentenceEncoder:
    """A sentence encoder on ONNX Runtime: ``encode``, ``similarity`` and evaluation without torch.

    Args:
        model_name_or_path: a folder written by ``sentsim export`` (or sentence-transformers'
            ``backend="onnx"`` export), or a hub name of such a model.
        file_name: the ONNX file under ``onnx/`` to run; by default the one for this CPU's instruction
            set (int8 where the export has it); ``"fp32"`` for the fp32 graph.
        threads: ONNX Runtime intra-op threads; default the number of physical cores.
    """

    backend = "onnx"

    def __init__(self, model_name_or_path: str | Path, *, file_name: str | None = None,
                 threads: int | None = None) -> None:
        from tokenizers import Tokenizer

        from sentsim.inference.calibration import IsotonicCalibration

        self.name_or_path = str(model_name_or_path)
        self.folder = resolve_model_path(model_name_or_path)
        self.file = find_onnx_file(self.folder, file_name)
        self.config = read_pipeline_config(self.folder)
        tokenizer_path = self.folder / "tokenizer.json"
        if not tokenizer_path.is_file():
            raise ModelLoadError(f"{self.folder} has no tokenizer.json (the fast tokenizer the ONNX backend needs)")
        self.tokenizer = Tokenizer.from_file(str(tokenizer_path))
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(max_length=self.config.max_seq_length)
        self.pad_id = self._pad_id()
        self.session = open_session(self.file, threads=threads)
        self.input_names = [item.name for item in self.session.get_inputs()]
        self.calibration: IsotonicCalibration | None = IsotonicCalibration.load(self.folder)
        self._dimension: int | None = None

    # -- what it is ---------------------------------------------------------------------------
    @property
    def max_seq_length(self) -> int:
        return self.config.max_seq_length

    @property
    def embedding_dimension(self) -> int:
        if self._dimension is None:
            self._dimension = int(self.encode("dimension probe").shape[-1])
        return self._dimension

    def get_sentence_embedding_dimension(self) -> int:
        return self.embedding_dimension

    def describe(self) -> str:
        """One line for logs: which file runs, and why (``onnx int8 model_qint8_avx2.onnx, CPU avx2``)."""
        manifest = _read_manifest(self.file.parent).get("variants", {}).get(self.file.name, {})
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

    tokenize = token_ids

    def _pad_id(self) -> int:
        padding = json.loads((self.folder / "tokenizer.json").read_text(encoding="utf-8")).get("padding") or {}
        if isinstance(padding.get("pad_id"), int):
            return padding["pad_id"]
        for token in ("[PAD]", "<pad>"):
            token_id = self.tokenizer.token_to_id(token)
            if token_id is not None:
                return token_id
        return 0

    # -- use ------------------------------------------------------------------------------------
    def encode(
        self,
        sentences: str | Sequence[str],
        *,
        batch_size: int = 32,
        normalize: bool = False,
        convert_to: Literal["numpy", "torch"] = "numpy",
        dtype: str = "auto",
        precision: str | None = None,
        show_progress: bool | None = None,
        truncate_dim: int | None = None,
        normalize_embeddings: bool | None = None,
        show_progress_bar: bool | None = None,
        convert_to_numpy: bool = True,
        convert_to_tensor: bool = False,
    ) -> Any:
        """Embeds ``sentences`` (one string → one vector); same options as the torch ``encode``.

        ``dtype`` and ``precision`` exist for call compatibility: the arithmetic is that of the loaded
        file (see ``describe``), so only ``auto`` / ``fp32`` / ``float32`` are accepted.
        """
        self._check_compute_options(dtype, precision)
        normalize = normalize or bool(normalize_embeddings)
        show_progress = show_progress if show_progress_bar is None else show_progress_bar
        single = isinstance(sentences, str)
        texts = [sentences] if single else list(sentences)
        if batch_size < 1:
            raise ConfigError(f"batch_size must be positive, got {batch_size}")
        if any(not isinstance(text, str) for text in texts):
            raise ConfigError("encode takes strings only")
        output = self._embed(texts, batch_size=batch_size, show_progress=show_progress)
        if truncate_dim is not None:
            output = np.ascontiguousarray(output[:, :truncate_dim])
        if normalize:
            output = output / np.maximum(np.linalg.norm(output, axis=1, keepdims=True), 1e-12)
        if convert_to == "torch" or convert_to_tensor or not convert_to_numpy:
            import torch  # only when the caller asked for tensors, so torch must be there

            result: Any = torch.from_numpy(output)
        else:
            result = output
        return result[0] if single else result

    def _check_compute_options(self, dtype: str, precision: str | None) -> None:
        if dtype not in ("auto", "fp32") or precision not in (None, "auto", "fp32", "float32"):
            raise ConfigError(f"the onnx backend runs {self.file.name} as exported; dtype/precision "
                              f"{dtype!r}/{precision!r} need the torch backend (--backend torch)")

    def _embed(self, texts: list[str], *, batch_size: int, show_progress: bool | None) -> np.ndarray:
        return self.embed_token_ids(self.token_ids(texts) if texts else [], batch_size=batch_size,
                                    show_progress=show_progress)

    def embed_token_ids(self, ids: Sequence[Sequence[int]], *, batch_size: int = 32,
                        show_progress: bool | None = False, run_overhead: int | None = None) -> np.ndarray:
        """Embeddings (pooled, normalised as configured) of texts already tokenised by :meth:`token_ids`;
        ``run_overhead``: cut batches where padding costs most (the server; see ``length_sorted_batches``)."""
        quiet = not show_progress if show_progress is not None else len(ids) < PROGRESS_THRESHOLD
        chunks: list[tuple[list[int], np.ndarray]] = []
        batches = list(length_sorted_batches([len(row) for row in ids], batch_size, run_overhead=run_overhead))
        for batch in progress_bar(batches, desc="Encoding", unit="batch", quiet=quiet):
            chunks.append((batch, self._run([ids[index] for index in batch])))
        width = chunks[0][1].shape[1] if chunks else (self._dimension or 0)
        output = np.empty((len(ids), width), dtype=np.float32)
        for batch, embeddings in chunks:
            output[batch] = embeddings
        return output

    def _run(self, batch: list[list[int]]) -> np.ndarray:
        longest = max(len(row) for row in batch)
        input_ids = np.full((len(batch), longest), self.pad_id, dtype=np.int64)
        attention_mask = np.zeros((len(batch), longest), dtype=np.int64)
        for row, sequence in enumerate(batch):
            input_ids[row, : len(sequence)] = sequence
            attention_mask[row, : len(sequence)] = 1
        feeds = {"input_ids": input_ids, "attention_mask": attention_mask}
        if "token_type_ids" in self.input_names:
            feeds["token_type_ids"] = np.zeros_like(input_ids)
        tokens = self.session.run(None, {name: feeds[name] for name in self.input_names})[0]
        embeddings = pool(np.asarray(tokens, dtype=np.float32), attention_mask, self.config.pooling_modes)
        if self.config.normalize:
            embeddings = embeddings / np.maximum(np.linalg.norm(embeddings, axis=1, keepdims=True), 1e-12)
        return embeddings

    def encode_pairs(self, sentences1: Sequence[str], sentences2: Sequence[str],
                     **options: Any) -> tuple[np.ndarray, np.ndarray]:
        """Embeds both sides of a pair list, each distinct sentence once (STS sets repeat many)."""
        unique = list(dict.fromkeys([*sentences1, *sentences2]))
        position = {text: index for index, text in enumerate(unique)}
        embeddings = np.asarray(self.encode(unique, **options))
        return embeddings[[position[text] for text in sentences1]], embeddings[[position[text] for text in sentences2]]

    def similarity(self, sentences_a: str | Sequence[str], sentences_b: str | Sequence[str], *,
                   scale: Literal["cosine", "sts"] = "cosine", batch_size: int = 32) -> np.ndarray | float:
        """Cosine of aligned pairs, or with ``scale="sts"`` the calibrated 0–5 score (as the torch model)."""
        single = isinstance(sentences_a, str) and isinstance(sentences_b, str)
        first = [sentences_a] if isinstance(sentences_a, str) else list(sentences_a)
        second = [sentences_b] if isinstance(sentences_b, str) else list(sentences_b)
        if len(first) != len(second):
            raise ConfigError(f"similarity needs aligned pairs: {len(first)} vs {len(second)} sentences")
        if scale not in ("cosine", "sts"):
            raise ConfigError(f"scale must be 'cosine' or 'sts', not {scale!r}")
        from sentsim.inference.calibration import aligned_cosines, calibrated_scores, require_calibration

        calibration = require_calibration(self.calibration) if scale == "sts" else None
        cosines = aligned_cosines(*self.encode_pairs(first, second, batch_size=batch_size, normalize=True))
        scores = calibrated_scores(cosines, calibration) if scale == "sts" else cosines
        return float(scores[0]) if single else scores

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """The server's engine call: float32 embeddings, no progress bar."""
        return self.encode(list(texts), show_progress=False)


def pool(tokens: np.ndarray, mask: np.ndarray, modes: Sequence[str]) -> np.ndarray:
    """Pools ``(batch, length, hidden)`` token embeddings under the mask, as ``models.Pooling`` does."""
    weights = mask[..., None].astype(np.float32)
    lengths = mask.sum(axis=1)
    pooled = []
    for mode in modes:
        if mode == "cls":
            pooled.append(tokens[:, 0])
        elif mode == "max":
            pooled.append(np.where(weights > 0, tokens, np.finfo(np.float32).min).max(axis=1))
        elif mode in ("mean", "mean_sqrt_len"):
            summed = (tokens * weights).sum(axis=1)
            count = np.maximum(weights.sum(axis=1), 1e-9)
            pooled.append(summed / count if mode == "mean" else summed / np.sqrt(count))
        elif mode == "weightedmean":
            positional = np.arange(1, tokens.shape[1] + 1, dtype=np.float32)[None, :, None] * weights
            pooled.append((tokens * positional).sum(axis=1) / np.maximum(positional.sum(axis=1), 1e-9))
        else:  # lasttoken: right padding, so the last real token sits at length - 1
            pooled.append(tokens[np.arange(tokens.shape[0]), np.maximum(lengths - 1, 0)])
    return pooled[0] if len(pooled) == 1 else np.concatenate(pooled, axis=1)


def onnx_encoder_from_arguments(model_name_or_path: str | Path | None = None, *, device: str | None = None,
                                model_kwargs: dict[str, Any] | None = None, **ignored: Any) -> OnnxSentenceEncoder:
    """``SentenceTransformer(path, backend="onnx", ...)``'s arguments → an encoder (CPU only).

    ``allow_pickle`` (no pickles are read here) and a cosine ``similarity_fn_name`` change nothing; any
    other torch-model option is refused rather than silently dropped.
    """
    from sentsim.persistence.hub import DEFAULT_MODEL

    if device not in (None, "cpu"):
        raise ConfigError(f"the onnx backend runs on the CPU; device {device!r} needs the torch backend")
    options = dict(model_kwargs or {})
    unknown = set(options) - {"file_name", "threads"}
    if unknown:
        raise ConfigError(f"model_kwargs {sorted(unknown)} are not supported by the onnx backend")
    refused = {name for name, value in ignored.items()
               if value is not None and name != "allow_pickle" and (name, value) != ("similarity_fn_name", "cosine")}
    if refused:
        raise ConfigError(f"{', '.join(sorted(refused))} not supported with backend='onnx'")
    return OnnxSentenceEncoder(model_name_or_path or DEFAULT_MODEL, **options)


BACKENDS = ("auto", "torch", "onnx")


def choose_backend(model_name_or_path: str | Path, backend: str = "auto") -> str:
    """``torch`` or ``onnx`` for a model; ``auto`` picks onnx for a folder written by ``sentsim export``.

    Only sentsim's own exports qualify for ``auto`` (their manifest names files whose speed and
    accuracy were measured); ONNX files from elsewhere run when asked for with ``onnx``. Without
    onnxruntime installed, ``auto`` stays on torch.
    """
    import importlib.util

    if backend not in BACKENDS:
        raise ConfigError(f"backend must be one of {', '.join(BACKENDS)}, not {backend!r}")
    if backend != "auto":
        return backend
    folder = Path(model_name_or_path).expanduser()
    exported = (folder / ONNX_FOLDER / MANIFEST_FILE).is_file()
    return "onnx" if exported and importlib.util.find_spec("onnxruntime") is not None else "torch"
