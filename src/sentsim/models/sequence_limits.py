"""How long a model's inputs may be: torch-free, shared by ``Transformer`` and the ONNX backend.

Both read the limit from the model's config (a transformers config object, or the plain
``config.json`` mapping the ONNX backend has), so the same folder accepts the same ``max_seq_length``
on either backend.
"""

from __future__ import annotations

import operator
from collections.abc import Mapping
from typing import Any

from sentsim.errors import ConfigError

#: Model types whose position ids start after the padding index (the fairseq heritage), which
#: leaves ``pad_token_id + 1`` fewer positions than ``max_position_embeddings`` says.
_OFFSET_POSITION_TYPES = frozenset({"roberta", "xlm-roberta", "xlm-roberta-xl", "camembert", "mpnet",
                                    "longformer", "data2vec-text", "ibert"})


def position_limit(config: Any) -> int | None:
    """The most tokens ``config``'s position embeddings can take, or None when it has no fixed limit.

    ``config``: a transformers config, or the mapping read from ``config.json``."""
    def get(name: str) -> Any:
        return config.get(name) if isinstance(config, Mapping) else getattr(config, name, None)

    limit = get("max_position_embeddings")
    if isinstance(limit, bool) or not isinstance(limit, int) or limit <= 0:
        return None
    if get("model_type") in _OFFSET_POSITION_TYPES:
        limit -= (get("pad_token_id") or 1) + 1
    return limit


def check_max_seq_length(value: object, limit: int | None) -> int:
    """``value`` as an int if it is a whole number from 2 (room for the special tokens) to ``limit``.

    A longer limit than the position embeddings would load fine and then crash on the first long
    input, so it is refused here, where the number is set.
    """
    allowed = f"from 2 to {limit} (the model's max_position_embeddings)" if limit else "of at least 2"
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    try:
        number = operator.index(value) if not isinstance(value, bool) else None
    except TypeError:
        number = None
    if number is None or number < 2 or (limit is not None and number > limit):
        raise ConfigError(f"max_seq_length must be a whole number {allowed}, got {value!r}")
    return number
