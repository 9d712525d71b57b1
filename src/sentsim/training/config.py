"""Training options in one place: what the CLI, the classic ``fit`` and the run folder all share."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from sentsim.errors import ConfigError

FORWARD_TOKENS_MESSAGE = "max_forward_tokens must be a positive integer, 'auto' or None"
#: transformers' learning-rate schedules that need nothing but the step (not reduce_lr_on_plateau or greedy,
#: which follow the eval metric): ``TrainConfig.lr_schedule``.
LR_SCHEDULES = ("linear", "cosine", "cosine_with_restarts", "polynomial", "constant", "constant_with_warmup",
                "inverse_sqrt", "cosine_with_min_lr", "cosine_warmup_with_min_lr", "warmup_stable_decay")


def valid_forward_tokens(setting: object) -> bool:
    """``max_forward_tokens``: "auto", None or a positive int (not a bool, not a float)."""
    return setting in ("auto", None) or (type(setting) is int and setting >= 1)


@dataclass(kw_only=True)
class TrainConfig:
    """Hyper-parameters of one training run; defaults are the classic SBERT STSb recipe."""

    loss: str = "cosine"
    #: Train the loss also on these leading slices of the embedding (``losses.MatryoshkaLoss``), e.g.
    #: (384, 256, 128, 64); None: the whole embedding only.
    matryoshka_dims: tuple[int, ...] | None = None
    #: Scale of the ranking losses (CoSENT / AnglE); None keeps each loss's default (20).
    loss_scale: float | None = None
    batch_size: int = 16
    learning_rate: float = 2e-5
    epochs: int = 1
    #: Stop after this many optimizer steps, however many epochs that takes (None: train ``epochs``).
    max_steps: int | None = None
    #: Fraction of all steps spent warming the learning rate up; ignored if warmup_steps is set.
    warmup_ratio: float = 0.1
    #: Warm-up steps; a float below 1 is a fraction of the run rounded up, as Hugging Face 5 reads it.
    warmup_steps: float | None = None
    #: The schedule after (or with) the warm-up: "linear" decays to 0 at the last step; the others are
    #: transformers' (``get_scheduler``), Hugging Face's ``lr_scheduler_type``.
    lr_schedule: str = "linear"
    #: That schedule's own options (Hugging Face's ``lr_scheduler_kwargs``, e.g. ``{"num_cycles": 2}``).
    lr_schedule_options: dict[str, Any] | None = None
    weight_decay: float = 0.01
    max_grad_norm: float | None = 1.0
    seed: int = 42
    #: Evaluate on dev every N steps as well as after each epoch (0: only after each epoch); below 1, a
    #: fraction of the run's steps, as Hugging Face reads ``eval_steps`` (see :func:`interval_steps`).
    evaluation_steps: float = 0
    #: Evaluate after each epoch. The sentence-transformers Trainer adapter turns it off for
    #: ``eval_strategy="steps"``, which evaluates every ``eval_steps`` and nowhere else.
    evaluate_each_epoch: bool = True
    #: Stop after this many evaluations without a better dev score (None: never stop early).
    patience: int | None = None
    #: Score the untrained model first, as the checkpoint to beat and the report's "base" figures. The
    #: sentence-transformers Trainer adapter turns it off (theirs never evaluates before training, so it
    #: could never end on the untrained weights), unless ``eval_on_start`` asks for it; see ``base_ranked``.
    evaluate_base: bool = True
    #: Whether that first evaluation is a checkpoint to beat. The Trainer adapter's ``eval_on_start`` turns
    #: it off: Hugging Face logs the evaluation it makes before training but ranks only later ones, so a
    #: run still ends on trained weights; it also evaluates again where a resumed run starts.
    base_ranked: bool = True
    #: Train this many runs (seeds seed … seed+N−1) and average their weights ("model soup");
    #: 1 trains a single model.
    average: int = 1
    #: "auto" picks bf16 autocast where the hardware has native bf16, else fp32.
    dtype: str = "auto"
    #: "auto" (cuda where available, else cpu), "cpu" or "cuda"; see ``sentsim.environment.resolve_device``.
    device: str = "auto"
    #: Group batches by length (fast) instead of plain shuffling.
    length_grouping: bool = True
    group_batches: int = 64
    #: Pad each batch to its longest text only (None) or up to a multiple: on CPU every padded token costs
    #: compute, and rounding STSb's ~14-token batches up to 8 made steps ~20 % slower (fp32; ~11 % bf16).
    pad_to_multiple_of: int | None = None
    #: Dropout masks on the CPU from a vectorised counter hash (``sentsim.training.dropout``) instead of
    #: torch's serial sampler: the same drop rate, ~8 % less time per bf16 step. False: torch's masks,
    #: which runs made before this option drew (to reproduce their exact numbers).
    fast_dropout: bool = True
    #: On the CPU, keep freed memory in the heap while training (``sentsim.training.heap``), so that big
    #: tensors reuse it instead of page-faulting fresh memory in every step; False: glibc's defaults.
    keep_freed_memory: bool = True
    #: Padded tokens per forward pass; a batch over it is backpropagated in chunks with the same gradient
    #: (``sentsim.training.chunks``). "auto": 1024 for per-pair losses (cosine), where chunks cost no extra
    #: work, no limit for ranking losses, where each chunked batch costs one more forward pass; None: never.
    max_forward_tokens: int | str | None = "auto"
    #: Hugging Face's gradient accumulation: each step's batch of ``batch_size`` pairs is backpropagated as
    #: this many micro-batches in turn, each under its own loss (in-batch negatives come from its own
    #: micro-batch), and the optimizer steps once. 1: the batch is one loss.
    accumulation_steps: int = 1
    log_every: float = 20
    #: Also log the first step, as Hugging Face's ``logging_first_step`` does.
    log_first_step: bool = False
    #: "steps": a record every ``log_every`` steps; "epoch": at each epoch's end; "no": no training records
    #: (Hugging Face's ``logging_strategy``).
    log_strategy: str = "steps"
    eval_batch_size: int = 64

    def __post_init__(self) -> None:
        checks = [
            (self.batch_size >= 1, "batch_size (--batch-size) must be at least 1"),
            (math.isfinite(self.learning_rate) and self.learning_rate > 0,
             "learning_rate (--lr) must be a positive finite number"),
            (self.max_grad_norm is None or (math.isfinite(self.max_grad_norm) and self.max_grad_norm >= 0),
             "max_grad_norm (--max-grad-norm) must be a finite number, not negative (0 or None: no clipping)"),
            (isinstance(self.seed, int) and 0 <= self.seed < 2**32, "seed (--seed) must be between 0 and 2**32 - 1"),
            (self.epochs >= 1, "epochs (--epochs) must be at least 1"),
            (self.max_steps is None or self.max_steps >= 1, "max_steps must be at least 1"),
            (0 <= self.warmup_ratio < 1, "warmup_ratio (--warmup-ratio) must be in [0, 1)"),
            (self.warmup_steps is None or (math.isfinite(self.warmup_steps) and self.warmup_steps >= 0),
             "warmup_steps must not be negative"),
            (self.matryoshka_dims is None or (len(self.matryoshka_dims) > 0 and all(
                type(dim) is int and dim >= 1 for dim in self.matryoshka_dims)),
             "matryoshka_dims (--matryoshka-dims) must be whole numbers of at least 1"),
            (self.log_strategy in ("steps", "epoch", "no"), "log_strategy must be steps, epoch or no"),
            (self.lr_schedule in LR_SCHEDULES, f"lr_schedule must be one of {', '.join(LR_SCHEDULES)}"),
            (self.lr_schedule_options is None or isinstance(self.lr_schedule_options, dict),
             "lr_schedule_options must be a dict of the schedule's options"),
            (math.isfinite(self.weight_decay) and self.weight_decay >= 0,
             "weight_decay (--weight-decay) must be a finite number of at least 0"),
            (self.evaluation_steps >= 0, "evaluation_steps (--evaluation-steps) must not be negative"),
            (self.patience is None or self.patience >= 1, "patience (--patience) must be at least 1"),
            (self.average >= 1, "average (--average) must be at least 1 (the number of runs to average)"),
            (self.dtype in ("auto", "fp32", "bf16"), "dtype must be auto, fp32 or bf16"),
            (self.device in ("auto", "cpu", "cuda") or self.device.startswith("cuda:"),
             "device must be auto, cpu or cuda"),
            (valid_forward_tokens(self.max_forward_tokens), FORWARD_TOKENS_MESSAGE),
            (isinstance(self.accumulation_steps, int) and not isinstance(self.accumulation_steps, bool)
             and 1 <= self.accumulation_steps <= self.batch_size,
             "accumulation_steps must be a whole number from 1 to batch_size"),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(message)

    def warmup_for(self, total_steps: int) -> int:
        """Warm-up steps of a run of ``total_steps``."""
        if self.warmup_steps is not None:
            if 0 < self.warmup_steps < 1:  # a fraction, rounded up as Hugging Face's get_warmup_steps does
                return math.ceil(self.warmup_steps * total_steps)
            return min(int(self.warmup_steps), total_steps)
        return round(self.warmup_ratio * total_steps)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def interval_steps(every: float | None, total_steps: int) -> int:
    """A step interval as Hugging Face reads one: a count, or below 1 a fraction of the run's steps, rounded
    up (``eval_steps=0.1``: ten evaluations); 0 or None stays 0 (never)."""
    every = every or 0
    return max(1, math.ceil(every * total_steps)) if 0 < every < 1 else int(every)
