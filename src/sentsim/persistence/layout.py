"""Reads and writes model folders in the sentence-transformers layout (``modules.json`` & co.)."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

from torch import nn

from sentsim.errors import ModelLoadError
from sentsim.models import Dense, Normalize, Pooling, Transformer
from sentsim.persistence.atomic import atomic_save_into
from sentsim.persistence.model_config import MODEL_CONFIG_FILE
from sentsim.persistence.model_files import refuse_run_folder

logger = logging.getLogger(__name__)

#: Type names written to ``modules.json``: the classic ones, which every sentence-transformers
#: release (2.x to 6.x) can import, so our folders load there unchanged.
SAVED_TYPES: dict[type[nn.Module], str] = {
    Transformer: "sentence_transformers.models.Transformer",
    Pooling: "sentence_transformers.models.Pooling",
    Normalize: "sentence_transformers.models.Normalize",
    Dense: "sentence_transformers.models.Dense",
}
_LOADERS: dict[str, Any] = {"Transformer": Transformer.load, "Pooling": Pooling.load, "Normalize": Normalize.load,
                            "Dense": Dense.load}


def load_modules(folder: str | Path, *, allow_pickle: bool = False) -> list[nn.Module]:
    """Builds the module pipeline stored in ``folder``.

    A folder without ``modules.json`` is a plain Hugging Face transformer: it gets mean pooling,
    the usual "from scratch" recipe. ``allow_pickle`` lets the transformer load pickle-only
    weights (``pytorch_model.bin``), which are refused by default because unpickling can run code.
    """
    folder = Path(folder)
    modules_path = folder / "modules.json"
    if not modules_path.is_file():
        refuse_run_folder(folder)
        transformer = load_transformer(folder, allow_pickle=allow_pickle)
        logger.info("%s has no modules.json: using it as a transformer with new mean pooling", folder)
        return [transformer, Pooling(transformer.embedding_dimension, modes="mean")]
    modules: list[nn.Module] = []
    for entry in sorted(read_modules_json(modules_path), key=lambda item: item.get("idx", 0)):
        kind = entry["type"].rsplit(".", 1)[-1]
        loader = _LOADERS.get(kind)
        if loader is None:
            raise ModelLoadError(f"{modules_path}: module type {entry['type']!r} is not supported by sentsim")
        module_folder = folder / entry["path"]
        if kind in ("Transformer", "Dense"):
            modules.append(loader(module_folder, allow_pickle=allow_pickle))
        elif kind == "Normalize" or module_folder.is_dir():
            modules.append(loader(module_folder))
        else:
            raise ModelLoadError(f"{modules_path}: module folder {module_folder} is missing")
    return modules


def read_card(folder: str | Path) -> str | None:
    """The model card (README.md) of a sentence-transformers folder, to be kept when the model is saved
    again untrained; None for a plain transformer folder (whose card describes another model than the
    one built on it), a missing or unreadable card."""
    folder = Path(folder)
    if not (folder / "modules.json").is_file():
        return None
    try:
        return (folder / "README.md").read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None


def load_transformer(folder: str | Path, *, max_seq_length: int | None = None,
                     allow_pickle: bool = False) -> Transformer:
    """The transformer of a model folder, for a new pipeline or a cross-encoder built on it.

    A sentence-transformers folder (``modules.json``) gives its own Transformer module (its pooling
    and the rest are left out); a plain Hugging Face folder (``config.json``) is read as a new one.
    ``max_seq_length`` replaces the stored limit (checked against the model's position limit).
    """
    folder = Path(folder)
    if (folder / "modules.json").is_file():
        transformer = Transformer.load(folder, allow_pickle=allow_pickle)
    elif (folder / "config.json").is_file():
        transformer = Transformer(folder, local_files_only=True, allow_pickle=allow_pickle)
    else:
        raise ModelLoadError(f"{folder} holds neither modules.json nor a transformer config.json")
    if max_seq_length is not None:
        transformer.max_seq_length = max_seq_length
    return transformer


def read_modules_json(path: Path) -> list[dict[str, Any]]:
    """The entries of ``modules.json``: a list of objects, each with a string ``type`` and ``path``
    (and optionally an integer ``idx``); anything else is refused with the file and entry named."""
    try:
        entries = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ModelLoadError(f"{path}: not valid JSON ({error})") from error
    except OSError as error:
        raise ModelLoadError(f"{path}: cannot read it ({error.strerror or error})") from error
    if not isinstance(entries, list) or not entries:
        kinds = {dict: "object", str: "string", int: "number", float: "number", bool: "boolean"}
        found = "an empty list" if entries == [] else f"a JSON {kinds.get(type(entries), 'null')}"
        raise ModelLoadError(f"{path}: expected a list of module entries, found {found}")
    for number, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise ModelLoadError(f"{path}: entry {number} is {entry!r}, not an object with 'type' and 'path'")
        for field in ("type", "path"):
            if not isinstance(entry.get(field), str):
                problem = "is missing" if field not in entry else f"is {entry[field]!r}, not a string"
                raise ModelLoadError(f"{path}: entry {number}'s {field!r} {problem}")
        relative = Path(entry["path"])
        if relative.is_absolute() or ".." in relative.parts:
            raise ModelLoadError(f"{path}: entry {number}'s path {entry['path']!r} leaves the model folder")
        index = entry.get("idx", 0)
        if isinstance(index, bool) or not isinstance(index, int):
            raise ModelLoadError(f"{path}: entry {number}'s 'idx' is {index!r}, not an integer")
    return entries


def save_modules(modules: list[nn.Module], folder: str | Path, *, extra_files: dict[str, str] | None = None,
                 versions: dict[str, str] | None = None, model_config: dict[str, Any] | None = None) -> Path:
    """Writes the pipeline atomically: a crash mid-save leaves any previous model folder intact.

    Into an existing folder, only the files and folders of the model are replaced; anything else there
    stays (``atomic_save_into``).
    """
    final = Path(folder)
    with atomic_save_into(final) as temp:
        entries = []
        for index, module in enumerate(modules):
            kind = SAVED_TYPES.get(type(module))
            if kind is None:
                raise ModelLoadError(f"cannot save module {type(module).__name__}: not a sentsim module")
            path = "" if index == 0 else f"{index}_{type(module).__name__}"
            module.save(temp / path if path else temp)
            entries.append({"idx": index, "name": str(index), "path": path, "type": kind})
        (temp / "modules.json").write_text(json.dumps(entries, indent=2) + "\n")
        config = {
            "__version__": versions or {},
            "prompts": {},
            "default_prompt_name": None,
            "similarity_fn_name": "cosine",
            "model_type": "SentenceTransformer",
            **(model_config or {}),
        }
        (temp / MODEL_CONFIG_FILE).write_text(json.dumps(config, indent=2) + "\n")
        for name, text in (extra_files or {}).items():
            (temp / name).write_text(text)
        _normal_file_modes(temp)
    return final


def _normal_file_modes(folder: Path) -> None:
    """Some writers (safetensors via transformers) leave 0600 files; a model folder is meant to be shared."""
    umask = os.umask(0)
    os.umask(umask)
    for path in folder.rglob("*"):
        if path.is_file():
            path.chmod(0o666 & ~umask)
