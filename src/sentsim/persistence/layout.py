"""Reads and writes model folders in the sentence-transformers layout (``modules.json`` & co.)."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

from torch import nn

from sentsim.errors import ModelLoadError
from sentsim.models import Normalize, Pooling, Transformer
from sentsim.persistence.atomic import atomic_directory

logger = logging.getLogger(__name__)

#: Type names written to ``modules.json``: the classic ones, which every sentence-transformers
#: release (2.x to 6.x) can import, so our folders load there unchanged.
SAVED_TYPES: dict[type[nn.Module], str] = {
    Transformer: "sentence_transformers.models.Transformer",
    Pooling: "sentence_transformers.models.Pooling",
    Normalize: "sentence_transformers.models.Normalize",
}
_LOADERS: dict[str, Any] = {"Transformer": Transformer.load, "Pooling": Pooling.load, "Normalize": Normalize.load}
CALIBRATION_FILE = "calibration.json"


def load_modules(folder: str | Path) -> list[nn.Module]:
    """Builds the module pipeline stored in ``folder``.

    A folder without ``modules.json`` is a plain Hugging Face transformer: it gets mean pooling,
    the usual "from scratch" recipe.
    """
    folder = Path(folder)
    modules_path = folder / "modules.json"
    if not modules_path.is_file():
        if not (folder / "config.json").is_file():
            raise ModelLoadError(f"{folder} holds neither modules.json nor a transformer config.json")
        logger.info("%s has no modules.json: using it as a transformer with new mean pooling", folder)
        transformer = Transformer(folder, local_files_only=True)
        return [transformer, Pooling(transformer.embedding_dimension, modes="mean")]
    try:
        entries = json.loads(modules_path.read_text())
    except json.JSONDecodeError as error:
        raise ModelLoadError(f"{modules_path}: not valid JSON ({error})") from error
    modules: list[nn.Module] = []
    for entry in sorted(entries, key=lambda item: item.get("idx", 0)):
        kind = str(entry.get("type", "")).rsplit(".", 1)[-1]
        loader = _LOADERS.get(kind)
        if loader is None:
            raise ModelLoadError(f"{modules_path}: module type {entry.get('type')!r} is not supported by sentsim")
        module_folder = folder / entry.get("path", "")
        if kind == "Normalize" or module_folder.is_dir():
            modules.append(loader(module_folder))
        else:
            raise ModelLoadError(f"{modules_path}: module folder {module_folder} is missing")
    return modules


def save_modules(modules: list[nn.Module], folder: str | Path, *, extra_files: dict[str, str] | None = None,
                 versions: dict[str, str] | None = None) -> Path:
    """Writes the pipeline atomically: a crash mid-save leaves any previous model folder intact."""
    final = Path(folder)
    with atomic_directory(final) as temp:
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
        }
        (temp / "config_sentence_transformers.json").write_text(json.dumps(config, indent=2) + "\n")
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
