"""The files and folders a model folder holds besides a user's own: what a save writes or derives from the weights.

Saving a model into an existing folder replaces these and nothing else (a user's notes stay), and one
left over from the model that was there before is removed: an ``onnx/`` export or a
``calibration.json`` of the old weights would otherwise be used with the new ones.
"""

from __future__ import annotations

import re
from pathlib import Path

from sentsim.errors import ModelLoadError

__all__ = ["MODEL_ENTRIES", "is_model_entry", "refuse_not_a_model", "refuse_run_folder"]

#: Top-level names of a model folder (sentence-transformers' layout, transformers' and tokenizers' files,
#: sentsim's calibration, ONNX / OpenVINO exports). README.md, the model card, is replaced when written
#: but never removed: it may be the user's.
MODEL_ENTRIES = frozenset({
    "modules.json", "config_sentence_transformers.json", "config.json", "sentence_bert_config.json",
    "model.safetensors", "pytorch_model.bin", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
    "vocab.txt", "vocab.json", "merges.txt", "added_tokens.json", "spiece.model", "sentencepiece.bpe.model",
    "calibration.json", "onnx", "openvino",
})
_MODULE_FOLDER = re.compile(r"\d+_\w+")


def is_model_entry(name: str) -> bool:
    """Whether a top-level entry of a model folder belongs to the model (``1_Pooling``, ``onnx``, ...)."""
    return name in MODEL_ENTRIES or _MODULE_FOLDER.fullmatch(name) is not None


def refuse_run_folder(folder: Path) -> None:
    """ModelLoadError for a ``sentsim train`` run folder given where its model is meant.

    Said by name, with the model's path: read as a plain transformer folder, the run would fail on a
    missing ``config.json`` that gives no hint. Cheap and torch-free, so ``serve`` checks it before
    taking the port instead of failing in the background after start-up.
    """
    if not (folder / "modules.json").is_file() and (folder / "model" / "modules.json").is_file():
        raise ModelLoadError(f"{folder} is a training run folder; its model is {folder / 'model'}")


def refuse_not_a_model(folder: Path) -> None:
    """ModelLoadError for a folder no backend can load: a run folder, or one without any model file.

    The server loads its model in the background so that ``/health`` answers at once; these two
    mistakes (the usual ones: a run folder, the wrong folder) are said before it starts instead.
    """
    refuse_run_folder(folder)
    if not any(is_model_entry(entry.name) for entry in folder.iterdir()):
        raise ModelLoadError(f"{folder} holds no model (no modules.json, config.json or onnx/ in it)")
