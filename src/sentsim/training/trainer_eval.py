"""The Trainer adapter's datasets and evaluation: text columns, ``eval_loss`` and the evaluator's metrics.

sentence-transformers' Trainer evaluates an ``eval_dataset`` by running the training loss over it
(``eval_loss``) and adds an evaluator's metrics, every key prefixed ``eval_``; this module does the same
on sentsim's loop, which calls an evaluator and ranks checkpoints by its highest ``primary_metric``.
"""

from __future__ import annotations

import math
import numbers
import time
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn
from torch.utils.data import RandomSampler

from sentsim.errors import ConfigError
from sentsim.training.batching import PairCollator, TokenizedPairs, tokenize_pairs
from sentsim.training.loop import PRIMARY_METRIC, batch_loss

#: Column names sentence-transformers reads as the label; every other column is a text, in order.
LABEL_COLUMNS = ("label", "score")
#: The loop keeps the highest score, so a run ranked by eval loss ranks by this (−loss) instead;
#: the Trainer leaves it out of everything it reports.
NEGATIVE_LOSS = "eval_negative_loss"


def dataset_columns(dataset: Any, *, scored: bool, ignore_label: bool = False,
                    prompts: str | dict[str, str] | None = None) -> tuple[list[list[str]], list[float] | None]:
    """Text columns (in order) and the label column of a ``datasets.Dataset`` or a dict of lists.

    ``ignore_label``: an unscored read that skips a label column instead of refusing it, as
    sentence-transformers' in-batch-negative losses skip it when they compute an eval loss.
    ``prompts`` (the training argument): one prompt put before every text, or one per text column
    name (columns it does not name get none), as sentence-transformers' collator does.
    """
    names = column_names(dataset)
    label_names, text_names = _split(names)
    if scored and not _scored(label_names, text_names):
        raise ConfigError(f"a scored loss needs two text columns and one 'label' or 'score' column; "
                          f"the dataset has {names}")
    if not scored and ((label_names and not ignore_label) or len(text_names) not in (2, 3)):
        raise ConfigError(f"MultipleNegativesRankingLoss needs (anchor, positive[, negative]) text columns and no "
                          f"label; the dataset has {names}")
    texts = [[_prompt(prompts, name) + text for text in checked_texts(dataset[name], f"column {name!r}")]
             for name in text_names]
    labels = checked_scores(dataset[label_names[0]], f"column {label_names[0]!r}") if scored else None
    return texts, labels


def checked_texts(values: Any, where: str) -> list[str]:
    """Training texts as they are, refusing what is not a string (``where`` names them in the error): a
    missing value would otherwise train as the text "None" (sentence-transformers' tokenizer fails on
    it without naming the row)."""
    values = list(values)
    for index, value in enumerate(values):
        if not isinstance(value, str):
            raise ConfigError(f"{where} at index {index}: {value!r} is not a text (str); drop or fill the rows "
                              "without one")
    return values


def checked_scores(values: Any, where: str) -> list[float]:
    """Gold scores as floats, refusing missing, non-numeric and non-finite values by index."""
    scores = []
    for index, value in enumerate(values):
        if not isinstance(value, numbers.Real):
            raise ConfigError(f"{where} at index {index}: {value!r} is not a number")
        if not math.isfinite(value):
            raise ConfigError(f"{where} at index {index}: {value!r} is not a finite number")
        scores.append(float(value))
    return scores


def _prompt(prompts: str | dict[str, str] | None, column: str) -> str:
    if isinstance(prompts, str):
        return prompts
    return (prompts or {}).get(column, "")


def text_columns(dataset: Any) -> list[str]:
    """The text (non-label) columns of a dataset, in order."""
    return _split(column_names(dataset))[1]


def column_names(dataset: Any) -> list[str]:
    """The columns of a ``datasets.Dataset`` or a dict of lists; anything else is refused."""
    if hasattr(dataset, "column_names"):
        return list(dataset.column_names)
    if isinstance(dataset, dict):
        return list(dataset)
    raise ConfigError(f"a dataset must be a datasets.Dataset or a dict of columns, not {type(dataset).__name__}")


def is_scored(dataset: Any) -> bool:
    """Two text columns and one label: what sentsim's similarity evaluator can score."""
    return _scored(*_split(column_names(dataset)))


def _split(names: list[str]) -> tuple[list[str], list[str]]:
    """(label columns, text columns), each in the dataset's order."""
    return [name for name in names if name in LABEL_COLUMNS], [name for name in names if name not in LABEL_COLUMNS]


def _scored(label_names: list[str], text_names: list[str]) -> bool:
    return len(label_names) == 1 and len(text_names) == 2


class EvalLoss:
    """The training loss over an eval dataset, as sentence-transformers' ``eval_loss``.

    Batches of ``batch_size`` rows in the order sentence-transformers' eval loader draws them (a
    ``RandomSampler`` seeded with ``seed``, the same at every evaluation): in-batch negatives and a
    loss over a batch depend on it, so the figure matches theirs. The mean is weighted by rows, as
    theirs is. Runs in eval mode without gradients, in fp32 on the model's device, and leaves both
    modes as it found them.
    """

    def __init__(self, dataset: Any, loss: nn.Module, *, batch_size: int, seed: int,
                 prompts: str | dict[str, str] | None = None) -> None:
        self.loss = loss
        self.in_batch = bool(getattr(loss, "in_batch_negatives", False))
        self.texts, self.labels = dataset_columns(dataset, scored=not self.in_batch, ignore_label=self.in_batch,
                                                  prompts=prompts)
        self.rows = len(self.texts[0])
        self.batch_size = batch_size
        self.seed = seed
        self._pairs: tuple[Any, TokenizedPairs] | None = None  # (model, its token ids): tokenised once

    def __call__(self, model: nn.Module) -> float:
        if self.rows == 0:
            raise ConfigError("eval_dataset has no rows: an eval loss needs at least one")
        collator = PairCollator(self._tokenized(model), model.collate,
                                targets="text_ids" if self.in_batch else "labels")
        device = next(model.parameters()).device
        modes = model.training, self.loss.training
        model.eval()
        self.loss.eval()
        order = list(RandomSampler(range(self.rows), generator=torch.Generator().manual_seed(self.seed)))
        total = 0.0
        try:
            with torch.no_grad():
                for start in range(0, self.rows, self.batch_size):
                    rows = order[start : start + self.batch_size]
                    features, targets = collator(rows)
                    features = {name: tensor.to(device) for name, tensor in features.items()}
                    value = batch_loss(self.loss, model(features)["sentence_embedding"], targets.to(device),
                                       sides=len(self.texts), in_batch=self.in_batch)
                    total += float(value) * len(rows)
        finally:
            model.train(modes[0])
            self.loss.train(modes[1])
        return total / self.rows

    def _tokenized(self, model: nn.Module) -> TokenizedPairs:
        if self._pairs is None or self._pairs[0] is not model:
            pairs = tokenize_pairs(model.token_ids, self.texts[0], self.texts[1], self.labels,
                                   negatives=self.texts[2] if len(self.texts) > 2 else None)
            self._pairs = (model, pairs)
        return self._pairs[1]


def _speed(prefix: str, seconds: float, *, rows: int, batch_size: int) -> dict[str, float]:
    """Hugging Face's ``<prefix>_runtime``, ``_samples_per_second`` and ``_steps_per_second`` of one evaluation."""
    if seconds <= 0:
        return {}
    return {f"{prefix}_runtime": round(seconds, 4), f"{prefix}_samples_per_second": round(rows / seconds, 3),
            f"{prefix}_steps_per_second": round(-(-rows // batch_size) / seconds, 3)}


class TrainerEvaluation:
    """One evaluation as the Trainer reports it: eval losses and evaluators' metrics, prefixed.

    ``losses`` maps each reported key (``eval_loss``, or ``eval_<dataset>_loss`` for several eval
    datasets) to its :class:`EvalLoss`; ``evaluators`` pairs each evaluator with the prefix its keys get
    when they do not already start with it, as in sentence-transformers. ``metric`` is
    ``metric_for_best_model`` (``eval_`` optional); without it the first eval loss ranks checkpoints (Hugging
    Face's TrainingArguments default it to "loss", so a sentence-transformers run keeps the same
    checkpoint), else the first evaluator's primary metric (where theirs would fail for want of an
    ``eval_loss``). A metric whose name ends in "loss" ranks lowest-first, as Hugging Face's
    ``greater_is_better`` default has it, through ``NEGATIVE_LOSS``, since the loop keeps the highest score.
    """

    def __init__(self, *, losses: dict[str, EvalLoss], evaluators: Sequence[tuple[str, Any]] = (),
                 metric: str | None = None, ranks: bool = True) -> None:
        if not losses and not evaluators:
            raise ConfigError("an evaluation needs an eval_dataset or an evaluator")
        self.losses = dict(losses)
        self.evaluators = list(evaluators)
        self.ranks = ranks  # False for trainer.evaluate(), which ranks nothing
        self.metric = metric if metric is None or metric.startswith("eval_") else f"eval_{metric}"
        #: Read by the loop once this has run (as sentence-transformers' evaluators name theirs).
        self.primary_metric: str | None = None
        #: The loss that ``NEGATIVE_LOSS`` stands for, when it ranks (the loop's log shows the loss itself).
        self.negated_metric: str | None = None

    def __call__(self, model: nn.Module, *args: Any, **kwargs: Any) -> dict[str, float]:
        started = time.perf_counter()
        metrics, seconds = {}, {}
        for key, loss in self.losses.items():
            begun = time.perf_counter()
            metrics[key] = loss(model)
            seconds[key] = time.perf_counter() - begun
        for prefix, evaluator in self.evaluators:
            for key, value in evaluator(model, *args, **kwargs).items():
                metrics[key if key.startswith(f"{prefix}_") else f"{prefix}_{key}"] = value
        if len(seconds) == 1:  # one eval dataset: its evaluation is the whole call, as Hugging Face times it
            seconds = {key: time.perf_counter() - started for key in seconds}
        for key, spent in seconds.items():
            metrics |= _speed(key.removesuffix("_loss"), spent, rows=self.losses[key].rows,
                              batch_size=self.losses[key].batch_size)
        if not self.ranks:
            return metrics
        ranked = self._ranked_by(metrics)
        self.negated_metric = None
        if ranks_lowest_first(ranked):
            metrics[NEGATIVE_LOSS] = -metrics[ranked]
            ranked, self.negated_metric = NEGATIVE_LOSS, ranked
        self.primary_metric = ranked
        return metrics

    def _ranked_by(self, metrics: dict[str, float]) -> str:
        """The metric that ranks checkpoints (see the class)."""
        if self.metric is not None:
            if self.metric not in metrics:
                raise ConfigError(f"metric_for_best_model {self.metric!r} is not among the evaluation's metrics "
                                  f"({', '.join(metrics)})")
            return self.metric
        if self.losses:  # Hugging Face's default metric_for_best_model: "loss"
            return next(iter(self.losses))
        prefix, evaluator = self.evaluators[0]
        named = getattr(evaluator, "primary_metric", None) or PRIMARY_METRIC
        for key in (named, f"{prefix}_{named}"):
            if key in metrics:
                return key
        raise ConfigError(f"the evaluator names no primary metric among {', '.join(metrics)}: "
                          "set metric_for_best_model")


def ranks_lowest_first(metric: str | None) -> bool:
    """Hugging Face's ``greater_is_better`` default: False exactly for a metric whose name ends in "loss"."""
    return metric is not None and metric.endswith("loss")


def reported(metrics: dict[str, Any]) -> dict[str, Any]:
    """Metrics as the Trainer reports them: without the loop's ranking key."""
    return {key: value for key, value in metrics.items() if key != NEGATIVE_LOSS}
