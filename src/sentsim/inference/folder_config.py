"""Reads a model folder's pipeline settings (sequence limit, pooling modes, normalize) without torch.

The torch side reads the same files through ``sentsim.models``; this copy of the rules exists so the
ONNX backend runs where torch is not installed. Keys and defaults follow ``models.pooling`` and
``models.transformer`` (sentence-transformers' layout).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sentsim.errors import ModelLoadError
from sentsim.models.pooling_modes import ALIASES, LEGACY_KEYS
from sentsim.models.sequence_limits import position_limit

#: Pooling modes in sentence-transformers' concatenation order, with their legacy config keys.
POOLING_KEYS = LEGACY_KEYS


@dataclass(frozen=True)
class PipelineConfig:
    """What runs around the transformer: truncation, lower-casing, pooling and normalisation."""

    max_seq_length: int
    do_lower_case: bool
    pooling_modes: tuple[str, ...]
    normalize: bool
    hidden_size: int | None
    #: The most tokens the position embeddings take (``models.sequence_limits``); None: no fixed limit.
    position_limit: int | None = None
    #: Whether a prompt's tokens are pooled with the text's (sentence-transformers' ``include_prompt``).
    include_prompt: bool = True
    #: The folders of the Dense layers after pooling, in pipeline order (``inference.onnx_dense``).
    dense_folders: tuple[Path, ...] = ()


def read_pipeline_config(folder: Path) -> PipelineConfig:
    """The pipeline of ``folder``; a folder without ``modules.json`` gets mean pooling, like ``load_modules``."""
    entries = _read_json(folder / "modules.json") if (folder / "modules.json").is_file() else None
    kinds = {}
    dense: list[Path] = []
    for entry in sorted(entries or [], key=lambda item: item.get("idx", 0)):
        kind = str(entry.get("type", "")).rsplit(".", 1)[-1]
        kinds[kind] = folder / entry.get("path", "")
        if kind == "Dense":
            dense.append(kinds[kind])
    unsupported = set(kinds) - {"Transformer", "Pooling", "Dense", "Normalize"}
    if unsupported:
        raise ModelLoadError(f"{folder / 'modules.json'}: module type(s) {sorted(unsupported)} are not supported by "
                             "the ONNX backend (it runs Transformer, Pooling, Dense and Normalize); use the torch "
                             "backend")
    transformer_folder = kinds.get("Transformer", folder)
    settings = _read_json(transformer_folder / "sentence_bert_config.json") \
        if (transformer_folder / "sentence_bert_config.json").is_file() else {}
    model_config = _read_json(folder / "config.json") if (folder / "config.json").is_file() else {}
    max_length = settings.get("max_seq_length") or _default_max_length(folder, model_config)
    modes: tuple[str, ...] = ("mean",)
    include_prompt = True
    if "Pooling" in kinds:
        pooling = _read_json(kinds["Pooling"] / "config.json")
        modes, include_prompt = pooling_modes(pooling), bool(pooling.get("include_prompt", True))
    hidden = model_config.get("hidden_size")
    return PipelineConfig(max_seq_length=int(max_length), do_lower_case=bool(settings.get("do_lower_case", False)),
                          pooling_modes=modes, normalize="Normalize" in kinds,
                          hidden_size=int(hidden) if hidden else None, position_limit=position_limit(model_config),
                          include_prompt=include_prompt, dense_folders=tuple(dense))


def pooling_modes(config: dict[str, Any]) -> tuple[str, ...]:
    """Modes from the legacy booleans or the newer ``pooling_mode`` string/list form."""
    named = config.get("pooling_mode")
    if isinstance(named, str | list):
        chosen = {ALIASES.get(mode, mode) for mode in ([named] if isinstance(named, str) else named)}
    else:
        chosen = {mode for mode, key in POOLING_KEYS.items() if config.get(key)}
    unknown = chosen - set(POOLING_KEYS)
    if unknown or not chosen:
        raise ModelLoadError(f"unsupported pooling config {config}")
    return tuple(mode for mode in POOLING_KEYS if mode in chosen)


def _default_max_length(folder: Path, model_config: dict[str, Any]) -> int:
    tokenizer_config = _read_json(folder / "tokenizer_config.json") if (folder / "tokenizer_config.json").is_file() \
        else {}
    limits = [model_config.get("max_position_embeddings"), tokenizer_config.get("model_max_length")]
    limits = [limit for limit in limits if isinstance(limit, int) and 0 < limit < 100_000]
    return min(limits) if limits else 512


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as error:
        raise ModelLoadError(f"{path}: cannot read ({error})") from error
