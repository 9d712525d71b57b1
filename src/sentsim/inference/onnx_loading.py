"""``SentenceTransformer(path, backend="onnx", ...)``: sentence-transformers' arguments → an ONNX encoder.

As in sentence-transformers, a folder without ONNX files is exported on the fly (fp32, into a
temporary folder removed at exit), unless ``model_kwargs={"export": False}``; ``export=True``
exports even when the folder has ONNX files. Exporting needs torch, so the caller passes the
exporter it has (the torch model class does; the torch-free stand-in passes none, and such a folder
is then an error that names ``sentsim export``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sentsim.errors import ConfigError, ModelLoadError
from sentsim.inference.onnx_backend import OnnxSentenceEncoder
from sentsim.inference.onnx_files import has_onnx_files
from sentsim.persistence.hub import DEFAULT_MODEL, resolve_model_path

logger = logging.getLogger(__name__)

#: The ONNX Runtime provider this backend runs; sentence-transformers' ``model_kwargs={"provider": ...}``.
PROVIDER = "CPUExecutionProvider"
Exporter = Callable[[Path], Path]


def onnx_encoder_from_arguments(model_name_or_path: str | Path | None = None, *, device: str | None = None,
                                model_kwargs: dict[str, Any] | None = None, prompts: dict[str, str] | None = None,
                                default_prompt_name: str | None = None, similarity_fn_name: str | None = None,
                                truncate_dim: int | None = None, exporter: Exporter | None = None,
                                **ignored: Any) -> OnnxSentenceEncoder:
    """The encoder for sentence-transformers' constructor arguments (CPU only).

    Model options (prompts, default prompt, similarity function, truncation) carry over, and so do the
    hub download options (``cache_folder``, ``revision``, ``token``, ``local_files_only``);
    ``model_card_data`` is kept on the encoder (``model.model_card_data``); ``allow_pickle`` (no pickles are
    read here) and a false ``trust_remote_code`` change nothing; any other torch-model option is refused
    rather than silently dropped.
    """
    if device not in (None, "cpu"):
        raise ConfigError(f"the onnx backend runs on the CPU; device {device!r} needs the torch backend")
    options = dict(model_kwargs or {})
    unknown = set(options) - {"file_name", "threads", "provider", "export"}
    if unknown:
        raise ConfigError(f"model_kwargs {sorted(unknown)} are not supported by the onnx backend")
    provider = options.pop("provider", PROVIDER)
    if provider != PROVIDER:
        raise ConfigError(f"provider {provider!r} is not supported: the onnx backend runs {PROVIDER}")
    card_data = ignored.pop("model_card_data", None)
    hub = {name: ignored.pop(name) for name in ("cache_folder", "revision", "token", "local_files_only")
           if name in ignored}
    if hub.get("token") is None and ignored.get("use_auth_token") is not None:
        hub["token"] = ignored["use_auth_token"]
    ignored.pop("use_auth_token", None)
    refused = {name for name, value in ignored.items()
               if value is not None and name != "allow_pickle"
               and (name, value) != ("trust_remote_code", False)}
    if refused:
        raise ConfigError(f"{', '.join(sorted(refused))} not supported with backend='onnx'")
    folder = resolve_model_path(model_name_or_path or DEFAULT_MODEL, **hub)
    export = options.pop("export", None)
    if export or (export is None and not has_onnx_files(folder)):
        folder = _export(folder, exporter)
        options.pop("file_name", None)  # as in sentence-transformers: a file name does not matter when exporting
    encoder = OnnxSentenceEncoder(folder, prompts=prompts, default_prompt_name=default_prompt_name,
                                  similarity_fn_name=similarity_fn_name, truncate_dim=truncate_dim, **options)
    encoder.model_card_data = card_data
    return encoder


def _export(folder: Path, exporter: Exporter | None) -> Path:
    if exporter is None:
        raise ModelLoadError(f"{folder} has no ONNX model, and exporting one needs torch: run `sentsim export "
                             f"{folder} -o DIR` where torch is installed, then load DIR")
    logger.warning("%s has no ONNX files: exporting it to ONNX (fp32) for this session; `sentsim export` "
                   "writes them for good (add --quantize int8 for the fast int8 files)", folder)
    return exporter(folder)
