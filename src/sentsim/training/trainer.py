"""sentence-transformers' ``SentenceTransformerTrainer`` API as an adapter onto sentsim's one training loop.

Like the classic ``fit`` (``training/compat.py``), it only translates: datasets → text columns,
training arguments → ``TrainConfig``, then ``train`` runs. Arguments sentsim cannot honour are refused
by name instead of being silently ignored.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, fields
from typing import Any

from sentsim.errors import ConfigError
from sentsim.training.config import TrainConfig
from sentsim.training.loop import TrainResult, train

logger = logging.getLogger(__name__)

#: Column names sentence-transformers reads as the label; every other column is a text, in order.
LABEL_COLUMNS = ("label", "score")
_STRATEGIES = ("no", "steps", "epoch", "best")


@dataclass(kw_only=True)
class SentenceTransformerTrainingArguments:
    """The training arguments sentsim supports, with Hugging Face's defaults.

    ``save_strategy`` other than "no" writes the final model (the best one with
    ``load_best_model_at_end``) to ``output_dir``; sentsim keeps no intermediate checkpoint folders.
    ``dtype`` is sentsim's extra: None follows ``bf16`` (bf16 autocast, else fp32); "auto" picks
    bf16 only where the hardware runs it natively.
    """

    output_dir: str | None = None
    num_train_epochs: float = 3.0
    max_steps: int = -1
    per_device_train_batch_size: int = 8
    per_device_eval_batch_size: int = 8
    learning_rate: float = 5e-5
    warmup_ratio: float = 0.0
    warmup_steps: int = 0
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    seed: int = 42
    eval_strategy: str = "no"
    eval_steps: int | None = None
    save_strategy: str = "steps"
    save_steps: int = 500
    save_total_limit: int | None = None
    load_best_model_at_end: bool = False
    metric_for_best_model: str | None = None
    greater_is_better: bool | None = None
    logging_steps: int = 500
    bf16: bool = False
    report_to: str | list[str] | None = "none"
    run_name: str | None = None
    disable_tqdm: bool = False
    batch_sampler: str = "batch_sampler"
    dtype: str | None = None
    unsupported: dict[str, Any] = field(default_factory=dict, repr=False)

    def __init__(self, output_dir: str | None = None, **options: Any) -> None:
        known = {item.name: item for item in fields(self) if item.name != "unsupported"}
        if "evaluation_strategy" in options:  # the older Hugging Face name
            options["eval_strategy"] = options.pop("evaluation_strategy")
        unknown = sorted(set(options) - set(known))
        if unknown:
            raise ConfigError(f"SentenceTransformerTrainingArguments: sentsim does not support {', '.join(unknown)}; "
                              f"supported: {', '.join(sorted(known))}")
        self.output_dir = output_dir
        for name, item in known.items():
            if name != "output_dir":
                default = item.default_factory() if callable(item.default_factory) else item.default
                setattr(self, name, options.get(name, default))
        self.unsupported = {}
        self._check()

    def _check(self) -> None:
        for name in ("eval_strategy", "save_strategy"):
            value = str(getattr(getattr(self, name), "value", getattr(self, name)))
            if value not in _STRATEGIES:
                raise ConfigError(f"{name} must be one of {', '.join(_STRATEGIES)}, not {value!r}")
            setattr(self, name, value)
        if self.greater_is_better is False:
            raise ConfigError("greater_is_better=False is not supported: sentsim keeps the highest dev score")
        if str(getattr(self.batch_sampler, "value", self.batch_sampler)) not in ("batch_sampler", "no_duplicates"):
            raise ConfigError(f"batch_sampler {self.batch_sampler!r} is not supported: sentsim groups batches by "
                              "length (no_duplicates is accepted: MultipleNegativesRankingLoss masks duplicates)")

    def to_config(self, *, default_dtype: str = "fp32") -> TrainConfig:
        """The equivalent ``TrainConfig`` (epochs must be whole unless ``max_steps`` is set)."""
        epochs = float(self.num_train_epochs)
        if self.max_steps <= 0 and (epochs < 1 or epochs != int(epochs)):
            raise ConfigError(f"num_train_epochs must be a whole number ≥ 1 (or set max_steps), got {epochs}")
        evaluation_steps = (self.eval_steps or self.logging_steps) if self.eval_strategy == "steps" else 0
        return TrainConfig(
            batch_size=self.per_device_train_batch_size, eval_batch_size=self.per_device_eval_batch_size,
            learning_rate=self.learning_rate, epochs=max(1, int(epochs)),
            max_steps=self.max_steps if self.max_steps > 0 else None,
            warmup_ratio=self.warmup_ratio, warmup_steps=self.warmup_steps or None,
            weight_decay=self.weight_decay, max_grad_norm=self.max_grad_norm, seed=self.seed,
            evaluation_steps=evaluation_steps, log_every=max(1, int(self.logging_steps)),
            dtype=self.dtype or ("bf16" if self.bf16 else default_dtype),
        )


@dataclass
class TrainOutput:
    """What ``train()`` returns, as in Hugging Face: steps, mean training loss, and final metrics."""

    global_step: int
    training_loss: float
    metrics: dict[str, float]


@dataclass
class TrainerState:
    log_history: list[dict[str, Any]] = field(default_factory=list)
    best_metric: float | None = None
    global_step: int = 0


class SentenceTransformerTrainer:
    """Trains a sentsim ``SentenceTransformer`` on a ``datasets.Dataset`` (or a dict of columns) with a loss.

    Columns: the texts first (sentence1, sentence2 — or anchor, positive[, negative] for
    MultipleNegativesRankingLoss), then a ``label`` or ``score`` column for scored losses.
    """

    def __init__(self, model: Any = None, args: SentenceTransformerTrainingArguments | None = None,
                 train_dataset: Any = None, eval_dataset: Any = None, loss: Any = None, evaluator: Any = None,
                 callbacks: Any = None, **unsupported: Any) -> None:
        given = sorted(name for name, value in unsupported.items() if value is not None)
        if given or callbacks:
            names = ", ".join(given + (["callbacks"] if callbacks else []))
            raise ConfigError(f"SentenceTransformerTrainer: sentsim does not support {names}")
        if model is None or train_dataset is None:
            raise ConfigError("SentenceTransformerTrainer needs a model and a train_dataset")
        if isinstance(train_dataset, dict) and all(not isinstance(v, list | tuple) for v in train_dataset.values()):
            raise ConfigError("several train datasets (a dict of datasets) are not supported; pass one dataset")
        self.model = model
        self.args = args or SentenceTransformerTrainingArguments(output_dir="trainer_output")
        self.train_dataset = train_dataset
        self.eval_dataset = eval_dataset
        self.loss = loss
        self.evaluator = evaluator
        self.state = TrainerState()

    def train(self) -> TrainOutput:
        from sentsim.losses import CoSENTLoss

        loss = self.loss if self.loss is not None else CoSENTLoss(self.model)
        in_batch = bool(getattr(loss, "in_batch_negatives", False))
        texts, labels = dataset_columns(self.train_dataset, scored=not in_batch)
        evaluator = self._evaluator()
        args = self.args
        result: TrainResult = train(
            self.model, sentences_a=texts[0], sentences_b=texts[1], labels=labels,
            negatives=texts[2] if len(texts) > 2 else None, config=args.to_config(), loss=loss, evaluator=evaluator,
            quiet=True if args.disable_tqdm else None, keep_best=args.load_best_model_at_end,
        )
        self.state = TrainerState(log_history=result.records, best_metric=result.best_score,
                                  global_step=result.steps)
        if args.output_dir and args.save_strategy != "no":
            self.model.save(args.output_dir)
        losses = [record["loss"] for record in result.records if record.get("kind") == "train"]
        return TrainOutput(global_step=result.steps, training_loss=sum(losses) / len(losses) if losses else 0.0,
                           metrics=dict(result.best_metrics or {}))

    def evaluate(self) -> dict[str, float]:
        """The evaluator's metrics on the current model, keys prefixed ``eval_`` as in Hugging Face."""
        evaluator = self._evaluator()
        if evaluator is None:
            raise ConfigError("evaluate() needs an evaluator or a scored eval_dataset")
        return {f"eval_{key}": value for key, value in evaluator(self.model).items()}

    def _evaluator(self) -> Any:
        """The given evaluator, else one over a scored eval_dataset; with metric_for_best_model, ranked by it."""
        evaluator = self.evaluator
        if isinstance(evaluator, list | tuple):
            raise ConfigError("a list of evaluators is not supported; pass one (SequentialEvaluator is not ported)")
        if evaluator is None and self.eval_dataset is not None and self.args.eval_strategy != "no":
            from sentsim.evaluation.evaluators import EmbeddingSimilarityEvaluator

            texts, scores = dataset_columns(self.eval_dataset, scored=True)
            evaluator = EmbeddingSimilarityEvaluator(texts[0], texts[1], scores, name="eval",
                                                     batch_size=self.args.per_device_eval_batch_size)
        if evaluator is None or self.args.eval_strategy == "no":
            return None
        metric = self.args.metric_for_best_model
        return _RankedBy(evaluator, metric) if metric else evaluator


class _RankedBy:
    """An evaluator whose checkpoints are ranked by ``metric_for_best_model`` (``eval_`` prefix optional)."""

    def __init__(self, evaluator: Any, metric: str) -> None:
        self.evaluator = evaluator
        self.metric = metric.removeprefix("eval_")
        self.primary_metric: str | None = None

    def __call__(self, model: Any, *args: Any, **kwargs: Any) -> dict[str, float]:
        metrics = self.evaluator(model, *args, **kwargs)
        if self.metric not in metrics:
            raise ConfigError(f"metric_for_best_model {self.metric!r} is not among the evaluator's metrics "
                              f"({', '.join(metrics)})")
        self.primary_metric = self.metric
        return metrics


def dataset_columns(dataset: Any, *, scored: bool) -> tuple[list[list[str]], list[float] | None]:
    """Text columns (in order) and the label column of a ``datasets.Dataset`` or a dict of lists."""
    if hasattr(dataset, "column_names"):
        names = list(dataset.column_names)
        column = dataset.__getitem__
    elif isinstance(dataset, dict):
        names = list(dataset)
        column = dataset.__getitem__
    else:
        raise ConfigError(f"a dataset must be a datasets.Dataset or a dict of columns, not {type(dataset).__name__}")
    label_names = [name for name in names if name in LABEL_COLUMNS]
    text_names = [name for name in names if name not in LABEL_COLUMNS]
    if scored and (len(label_names) != 1 or len(text_names) != 2):
        raise ConfigError(f"a scored loss needs two text columns and one 'label' or 'score' column; "
                          f"the dataset has {names}")
    if not scored and (label_names or len(text_names) not in (2, 3)):
        raise ConfigError(f"MultipleNegativesRankingLoss needs (anchor, positive[, negative]) text columns and no "
                          f"label; the dataset has {names}")
    texts = [[str(text) for text in column(name)] for name in text_names]
    labels = [float(value) for value in column(label_names[0])] if scored else None
    return texts, labels
