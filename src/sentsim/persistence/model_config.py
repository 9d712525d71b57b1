"""sentence-transformers' model-level options file, read without torch (the ONNX backend needs it too)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from sentsim.errors import ModelLoadError

#: sentence-transformers' model-level options: prompts, similarity function, truncation.
MODEL_CONFIG_FILE = "config_sentence_transformers.json"


def read_model_config(folder: str | Path) -> dict[str, Any]:
    """``config_sentence_transformers.json`` (prompts, similarity_fn_name, truncate_dim …), or {} without one."""
    path = Path(folder) / MODEL_CONFIG_FILE
    if not path.is_file():
        return {}
    try:
        config = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise ModelLoadError(f"{path}: not valid JSON ({error})") from error
    if not isinstance(config, dict):
        raise ModelLoadError(f"{path}: expected a JSON object")
    return config
