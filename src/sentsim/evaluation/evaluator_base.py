"""What sentsim's sentence-transformers-style evaluators share: their common options, keys and function names.

Each evaluator is called as ``evaluator(model, output_path=None, epoch=-1, steps=-1)`` and returns its
metrics with keys prefixed by its ``name``; ``primary_metric`` (also prefixed) names the one that ranks
checkpoints, highest first. Torch-free, so the evaluators built only on numpy run in the light install.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sentsim.inference.similarity_any import check_similarity_fn_name


def similarity_functions(names: Sequence[Any] | None, main: Any = None) -> tuple[list[str], str | None]:
    """(the similarity function names asked for, the main one): plain names, enums accepted, the main one
    alone when no list is given; an unknown name is a ValueError naming the valid ones."""
    main_name = check_similarity_fn_name(main) if main else None
    listed = [check_similarity_fn_name(name) for name in names or ()]
    return listed or ([main_name] if main_name else []), main_name


class SentenceEvaluator:
    """The options every evaluator takes, with sentence-transformers' defaults handled alike."""

    greater_is_better = True

    def __init__(self, *, name: str, batch_size: int, show_progress_bar: bool | None, write_csv: bool,
                 truncate_dim: int | None, dtype: str, csv_file: str) -> None:
        self.name = name
        self.batch_size = batch_size
        self.show_progress_bar = bool(show_progress_bar)
        self.write_csv = write_csv
        self.truncate_dim = truncate_dim
        #: sentsim's extra: the encoder's compute type ("auto": bf16 only where the CPU has it natively).
        self.dtype = dtype
        self.csv_file = csv_file
        self.primary_metric: str | None = None

    def prefixed(self, metrics: dict[str, float], primary: str) -> dict[str, float]:
        """``metrics`` with keys prefixed by the name (when there is one); ``primary`` becomes ``primary_metric``."""
        self.primary_metric = f"{self.name}_{primary}" if self.name else primary
        return {f"{self.name}_{key}" if self.name else key: value for key, value in metrics.items()}
