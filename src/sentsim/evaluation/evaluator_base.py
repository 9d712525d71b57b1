"""What sentsim's evaluators share, and the base class custom evaluators extend, as in sentence-transformers.

An evaluator is called as ``evaluator(model, output_path=None, epoch=-1, steps=-1)`` and returns its
metrics with keys prefixed by its ``name``; ``primary_metric`` (also prefixed) names the one that ranks
checkpoints, highest first. ``SentenceEvaluator`` (also ``BaseEvaluator``) has sentence-transformers'
helpers, so a custom evaluator written for theirs (``super().__init__()``, ``prefix_name_to_metrics``,
``store_metrics_in_model_card_data``) runs here unchanged. Torch-free, so the evaluators built only on
numpy run in the light install.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from sentsim.evaluation.results_csv import append_row
from sentsim.inference.similarity_any import check_similarity_fn_name


def similarity_functions(names: Sequence[Any] | None, main: Any = None) -> tuple[list[str], str | None]:
    """(the similarity function names asked for, the main one): plain names, enums accepted, the main one
    alone when no list is given; an unknown name is a ValueError naming the valid ones."""
    main_name = check_similarity_fn_name(main) if main else None
    listed = [check_similarity_fn_name(name) for name in names or ()]
    return listed or ([main_name] if main_name else []), main_name


def named_file(stem: str, name: str, suffix: str = "_results.csv") -> str:
    """``{stem}_{name}{suffix}``, or ``{stem}{suffix}`` for an evaluator without a name: how
    sentence-transformers names each evaluator's results (and predictions) files."""
    return f"{stem}_{name}{suffix}" if name else f"{stem}{suffix}"


class SentenceEvaluator:
    """The base of every evaluator: the options sentsim's take, and sentence-transformers' helpers."""

    def __init__(self, *, name: str = "", batch_size: int = 32, show_progress_bar: bool | None = False,
                 write_csv: bool = True, truncate_dim: int | None = None, dtype: str = "auto",
                 csv_file: str = "") -> None:
        self.name = name
        self.batch_size = batch_size
        self.show_progress_bar = bool(show_progress_bar)
        self.write_csv = write_csv
        self.truncate_dim = truncate_dim
        #: sentsim's extra: the encoder's compute type ("auto": bf16 only where the CPU has it natively).
        self.dtype = dtype
        self.csv_file = csv_file
        self.greater_is_better = True
        self.primary_metric: str | None = None

    def __call__(self, model: Any, output_path: str | None = None, epoch: int = -1,
                 steps: int = -1) -> float | dict[str, float]:
        raise NotImplementedError(f"{type(self).__name__} must implement __call__")

    def embed_inputs(self, model: Any, texts: Sequence[str], *, side: str | None = None, **options: Any) -> Any:
        """``texts`` embedded as the evaluators embed them: through ``encode_query`` / ``encode_document``
        for a ``side`` ("query" or "document") where the model has them, else ``encode``; with the
        evaluator's batch size, progress bar and truncation, as numpy arrays unless ``options`` say
        otherwise. sentsim's ``dtype`` is passed only when one was asked for (not "auto"), so an
        evaluator also runs on models whose ``encode`` has no such argument."""
        encode = (getattr(model, f"encode_{side}", None) if side else None) or model.encode
        defaults = {"batch_size": self.batch_size, "show_progress_bar": self.show_progress_bar,
                    "convert_to_numpy": True, "truncate_dim": self.truncate_dim}
        dtype = {} if self.dtype == "auto" else {"dtype": self.dtype}
        return encode(list(texts), **{**defaults, **dtype, **options})

    @staticmethod
    def model_similarity_fn_name(model: Any) -> str:
        """The model's own similarity function, for an evaluator given none; cosine for a model without one."""
        return getattr(model, "similarity_fn_name", None) or "cosine"

    def append_results_row(self, output_path: str | None, row: Sequence[Any], *,
                           headers: Sequence[str] | None = None) -> None:
        """One row of a call's figures in the evaluator's CSV (``csv_headers`` unless ``headers``), when the
        call has an ``output_path`` and the evaluator ``write_csv``."""
        if output_path is not None and self.write_csv:
            append_row(output_path, self.csv_file, headers if headers is not None else self.csv_headers, row)

    def prefixed(self, model: Any, metrics: dict[str, float], primary: str, *, epoch: int = -1,
                 steps: int = -1) -> dict[str, float]:
        """The finished metrics: keys prefixed by the name, ``primary`` as ``primary_metric``, and the
        figures recorded in the model's card data (its Evaluation table), as theirs do."""
        self.primary_metric = primary
        metrics = self.prefix_name_to_metrics(metrics, self.name)
        self.store_metrics_in_model_card_data(model, metrics, epoch, steps)
        return metrics

    def prefix_name_to_metrics(self, metrics: dict[str, float], name: str) -> dict[str, float]:
        """``{name}_{key}`` for every key (values as floats where they are numbers), and the same prefix on
        ``primary_metric``; unchanged keys without a name. sentence-transformers' helper."""
        def number(value: Any) -> Any:
            try:
                return float(value)
            except (TypeError, ValueError):
                return value

        if not name:
            return {key: number(value) for key, value in metrics.items()}
        if self.primary_metric is not None and not self.primary_metric.startswith(f"{name}_"):
            self.primary_metric = f"{name}_{self.primary_metric}"
        return {f"{name}_{key}": number(value) for key, value in metrics.items()}

    def store_metrics_in_model_card_data(self, model: Any, metrics: dict[str, Any], epoch: int = 0,
                                         step: int = 0) -> None:
        """Hands the figures to the model's card data, for the card's Evaluation table (models without
        card data, such as stand-ins in tests, are skipped)."""
        card = getattr(model, "model_card_data", None)
        if card is not None and hasattr(card, "set_evaluation_metrics"):
            card.set_evaluation_metrics(self, metrics, epoch, step)

    @property
    def description(self) -> str:
        """The class name as words, without "Evaluator": BinaryClassificationEvaluator → "Binary Classification"."""
        words = type(self).__name__.split("Evaluator")[0]
        return re.sub(r"([a-z])([A-Z])", r"\g<1> \g<2>", words)

    def get_config_dict(self) -> dict[str, Any]:
        """Settings worth showing in a model card (none by default)."""
        return {}


#: sentence-transformers' current name for the same base class.
BaseEvaluator = SentenceEvaluator
