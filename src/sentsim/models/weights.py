"""Checks on a transformer folder's weight files before Hugging Face loads them.

transformers reports a damaged or refused weights file as a bare ``SafetensorError`` or a
multi-paragraph ``UnpicklingError`` that names neither the file nor what to do; these checks turn
each case into a one-line :class:`~sentsim.errors.ModelLoadError` that does.
"""

from __future__ import annotations

import pickle
from pathlib import Path

from sentsim.errors import ModelLoadError

#: Pickle weight files transformers would fall back to when a folder has no safetensors.
PICKLE_PATTERNS = ("pytorch_model.bin", "pytorch_model-*.bin")
ALLOW_PICKLE_HINT = "pass allow_pickle=True (the CLI's --allow-pickle) only if you trust where the folder came from"


def check_weight_files(folder: Path, *, allow_pickle: bool) -> None:
    """Refuses damaged safetensors files, and pickle-only weights unless ``allow_pickle``.

    Pickle is refused by default because unpickling can run arbitrary code; transformers'
    ``weights_only`` loader blocks the known payloads, but a model folder should not need it.
    """
    safetensors_files = sorted(folder.glob("*.safetensors"))
    for path in safetensors_files:
        _check_safetensors(path)
    if safetensors_files or allow_pickle:
        return
    pickles = sorted(path for pattern in PICKLE_PATTERNS for path in folder.glob(pattern))
    if pickles:
        raise ModelLoadError(
            f"{pickles[0]}: the folder holds only pickle weights, which can run code when loaded, "
            f"so sentsim refuses them; {ALLOW_PICKLE_HINT}, or convert the weights to safetensors"
        )


def _check_safetensors(path: Path) -> None:
    """Reads the header and checks that the tensors it declares fit in the file (no data is loaded)."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt"):
            pass
    except (SafetensorError, OSError) as error:
        reason = str(error).removeprefix("Error while deserializing header: ")
        size = path.stat().st_size if path.is_file() else 0
        raise ModelLoadError(f"{path}: not a valid safetensors file ({reason}; {size} bytes), "
                             "probably truncated or damaged; copy or save the model again") from error


def describe_unpickling_error(folder: Path, error: pickle.UnpicklingError) -> str:
    """One line for a pickle that torch's ``weights_only`` loader refused, naming the blocked global."""
    files = sorted(path for pattern in PICKLE_PATTERNS for path in folder.glob(pattern))
    where = str(files[0]) if files else str(folder)
    # torch's message is a paragraph of advice around one line that says what was blocked.
    lines = [line.strip() for line in str(error).splitlines()[1:] if line.strip()]
    blocked = next((line for line in lines if not line.startswith(("Please file", "Check the doc"))), "")
    detail = f" ({blocked.rstrip('.')})" if blocked else ""
    return (f"{where}: refused to unpickle the weights{detail}; torch's safe loader admits only tensors "
            "and this file holds something else, possibly code: do not use it unless you trust its source")
