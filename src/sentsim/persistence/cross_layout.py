"""Reads and writes a sentsim cross-encoder folder: the transformer's files, its head and options beside them.

The transformer files sit at the top of the folder, so any Hugging Face tool can read the encoder;
the linear head (safetensors) and a small JSON of options are sentsim's own.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from sentsim.errors import ModelLoadError
from sentsim.models import Transformer
from sentsim.persistence.atomic import atomic_save_into

#: The head's weights and the cross-encoder's options, beside the transformer's own files.
HEAD_FILE = "cross_encoder_head.safetensors"
CONFIG_FILE = "sentsim_cross_encoder.json"


def save_cross_encoder(transformer: Transformer, head: nn.Linear, path: str | Path) -> Path:
    """Writes the cross-encoder to a temporary folder and renames it, so a crash never leaves half a model."""
    from sentsim import __version__

    path = Path(path)
    with atomic_save_into(path) as folder:
        transformer.save(folder)
        state = {name: tensor.detach().cpu().contiguous() for name, tensor in head.state_dict().items()}
        save_file(state, str(folder / HEAD_FILE))
        (folder / CONFIG_FILE).write_text(json.dumps(
            {"type": "sentsim.CrossEncoder", "pooling": "mean", "activation": "sigmoid",
             "sentsim_version": __version__}, indent=2) + "\n")
    return path


def load_cross_encoder_parts(path: str | Path) -> tuple[Transformer, nn.Linear]:
    """The transformer and the linear head of a folder written by ``save_cross_encoder``."""
    folder = Path(path)
    if not (folder / CONFIG_FILE).is_file() or not (folder / HEAD_FILE).is_file():
        raise ModelLoadError(f"{folder} is not a sentsim cross-encoder (no {CONFIG_FILE} / {HEAD_FILE})")
    transformer = Transformer.load(folder)
    state: dict[str, Any] = load_file(str(folder / HEAD_FILE))
    weight = state.get("weight")
    if not isinstance(weight, torch.Tensor) or weight.shape != (1, transformer.embedding_dimension):
        raise ModelLoadError(f"{folder / HEAD_FILE}: head does not match the encoder's "
                             f"{transformer.embedding_dimension} dimensions")
    head = nn.Linear(transformer.embedding_dimension, 1)
    head.load_state_dict(state)
    return transformer, head
