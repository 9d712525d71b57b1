"""sentence-transformers' ``SentenceTransformerTrainingArguments``: the fields sentsim honours, with Hugging Face's
defaults, and the others it accepts only where they change nothing.

Why a field is refused rather than ignored: a script that asks for gradient accumulation or another
scheduler and silently gets sentsim's own would report results it did not get. A field that sentsim
behaves as at one value (Hugging Face's default, or an equivalent) is accepted at that value; one that
changes nothing sentsim does (data-loader workers, hub names, launcher ranks) is accepted at any value.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass, fields
from typing import Any

from sentsim.errors import ConfigError
from sentsim.training.batch_samplers import SUPPORTED_BATCH_SAMPLERS, BatchSamplers, MultiDatasetBatchSamplers
from sentsim.training.config import LR_SCHEDULES, TrainConfig
from sentsim.training.trainer_eval import ranks_lowest_first

__all__ = ["SentenceTransformerTrainingArguments"]

_STRATEGIES = ("no", "steps", "epoch", "best")
#: The strategy fields and the values each takes (Hugging Face's enums arrive as themselves or their values).
_STRATEGY_FIELDS = {"eval_strategy": _STRATEGIES, "save_strategy": _STRATEGIES,
                    "logging_strategy": ("steps", "epoch", "no")}
_ADAMW = "sentsim's AdamW has torch's betas (0.9, 0.999) and eps 1e-8"
#: Hugging Face fields that sentsim behaves as at these values only: (the values, what sentsim does).
_ONLY_AT = {
    "optim": (("adamw_torch_fused", "adamw_torch"), "sentsim trains with torch's AdamW, fused where it can be"),
    "optim_args": ((None, ""), _ADAMW),
    "adam_beta1": ((0.9,), _ADAMW),
    "adam_beta2": ((0.999,), _ADAMW),
    "adam_epsilon": ((1e-8,), _ADAMW),
    "label_smoothing_factor": ((0.0,), "sentsim's losses take no label smoothing"),
    "dataloader_drop_last": ((False,), "sentsim trains on every pair, the last short batch included"),
    "data_seed": ((None,), "seed orders the data too (a data_seed equal to seed is accepted)"),
    "auto_find_batch_size": ((False,), "the batch is per_device_train_batch_size pairs"),
    "gradient_checkpointing": ((None, False), "sentsim keeps the activations for the backward"),
    "torch_compile": ((False,), "sentsim trains eagerly: compiling cost more than it saved on runs this short "
                      "(benchmarks/README.md)"),
    "eval_delay": ((0,), "evaluations follow eval_strategy from the first step"),
    "include_num_input_tokens_seen": (("no", False), "sentsim does not count input tokens"),
    "full_determinism": ((False,), "not supported"),
    "bf16_full_eval": ((False,), "not supported"),
    "tf32": ((None, False), "not supported"),
    "torch_empty_cache_steps": ((None,), "not supported"),
    "save_on_each_node": ((False,), "the main process saves the checkpoints"),
    "push_to_hub": ((False,), "sentsim uploads nothing: upload output_dir with huggingface_hub's upload_folder"),
    "report_to": (("none", None, (), ("none",)), "sentsim reports to no experiment tracker: the metrics are in "
                  "trainer.state.log_history and in each checkpoint's trainer_state.json"),
    "router_mapping": ((None, {}), "Router models are not supported"),
    "learning_rate_mapping": ((None, {}), "sentsim trains all parameters at one learning rate"),
}


@dataclass(kw_only=True)
class SentenceTransformerTrainingArguments:
    """The training arguments sentsim supports, with Hugging Face's defaults.

    ``save_strategy`` other than "no" writes checkpoints as Hugging Face does (``output_dir/checkpoint-<step>``:
    "steps" every ``save_steps`` and at the end, "epoch", "best"; ``save_total_limit`` keeps the newest),
    each a loadable model with sentsim's training state beside it, and the final model (the best one with
    ``load_best_model_at_end``) to ``output_dir`` itself.
    ``dtype`` is sentsim's extra: None follows ``bf16`` (bf16 autocast, else fp32); "auto" picks
    bf16 only where the hardware runs it natively. ``fp16`` exists so that ``fp16=False`` reads as in
    Hugging Face; a true one is refused (sentsim trains in fp32 or bf16).
    """

    output_dir: str | None = None
    num_train_epochs: float = 3.0
    max_steps: int = -1
    per_device_train_batch_size: int = 8
    per_device_eval_batch_size: int = 8
    learning_rate: float = 5e-5
    warmup_ratio: float = 0.0
    #: Hugging Face 5's reading: a float below 1 is a fraction of the run (rounded up).
    warmup_steps: float = 0
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    seed: int = 42
    eval_strategy: str = "no"
    eval_steps: int | None = None
    save_strategy: str = "steps"
    #: Steps between checkpoints, or below 1 a fraction of the run's steps (as Hugging Face reads it).
    save_steps: float = 500
    save_total_limit: int | None = None
    #: True lets a new run replace the checkpoint-<step> folders an earlier run left in output_dir (they are
    #: removed before it starts); otherwise the run refuses to start over them.
    overwrite_output_dir: bool = False
    #: True saves checkpoints as models only (no optimizer, schedule or RNG states): smaller, not resumable.
    save_only_model: bool = False
    load_best_model_at_end: bool = False
    metric_for_best_model: str | None = None
    greater_is_better: bool | None = None
    logging_steps: int = 500
    bf16: bool = False
    fp16: bool = False
    report_to: str | None | list[str] = "none"  # noqa: RUF036 (None second: see prompts)
    #: True trains on the CPU where a GPU is there too.
    use_cpu: bool = False
    run_name: str | None = None
    disable_tqdm: bool = False
    batch_sampler: str | BatchSamplers = BatchSamplers.BATCH_SAMPLER
    #: How the batches of several train datasets (a dict of them) take turns.
    multi_dataset_batch_sampler: str | MultiDatasetBatchSamplers = MultiDatasetBatchSamplers.PROPORTIONAL
    dtype: str | None = None
    #: A prompt put before every text, or one per text column name, or per dataset name either of those
    #: (for a dict of datasets), as sentence-transformers reads them.
    #: (Unions are written str first, None second: Hugging Face's HfArgumentParser can read them only so.)
    prompts: str | None | dict[str, str] | dict[str, str | dict[str, str]] = None  # noqa: RUF036

    #: Micro-batches of per_device_train_batch_size pairs per optimizer step, each under its own loss.
    gradient_accumulation_steps: int = 1
    #: Also log the first step (``TrainConfig.log_first_step``).
    logging_first_step: bool = False
    #: "steps" (every ``logging_steps``), "epoch" or "no" (``TrainConfig.log_strategy``).
    logging_strategy: str = "steps"
    #: transformers' schedule after the warm-up (``TrainConfig.lr_schedule``), and its options as a dict or JSON.
    lr_scheduler_type: str = "linear"
    lr_scheduler_kwargs: str | None | dict[str, Any] = None  # noqa: RUF036
    # Hugging Face fields accepted only at the value sentsim behaves as (_ONLY_AT says why).
    optim: str = "adamw_torch_fused"
    optim_args: str | None = None
    adam_beta1: float = 0.9
    adam_beta2: float = 0.999
    adam_epsilon: float = 1e-8
    label_smoothing_factor: float = 0.0
    dataloader_drop_last: bool = False
    data_seed: int | None = None
    auto_find_batch_size: bool = False
    gradient_checkpointing: bool | None = None
    torch_compile: bool = False
    eval_on_start: bool = False
    eval_delay: float = 0
    include_num_input_tokens_seen: str = "no"
    full_determinism: bool = False
    bf16_full_eval: bool = False
    tf32: bool | None = None
    torch_empty_cache_steps: int | None = None
    save_on_each_node: bool = False
    push_to_hub: bool = False
    router_mapping: str | None = None
    learning_rate_mapping: str | None = None
    # Hugging Face fields that change nothing sentsim does (it tokenizes in the training process, uploads
    # nothing, and takes its rank from the launcher): accepted at any value.
    do_train: bool = False
    do_eval: bool = False
    do_predict: bool = False
    logging_dir: str | None = None
    logging_nan_inf_filter: bool = True
    log_level: str = "passive"
    log_level_replica: str = "warning"
    dataloader_num_workers: int = 0
    dataloader_pin_memory: bool = True
    dataloader_persistent_workers: bool = False
    dataloader_prefetch_factor: int | None = None
    remove_unused_columns: bool = True
    prediction_loss_only: bool = False
    eval_accumulation_steps: int | None = None
    eval_do_concat_batches: bool = True
    local_rank: int = -1
    ddp_find_unused_parameters: bool | None = None
    resume_from_checkpoint: str | None = None
    hub_model_id: str | None = None
    hub_strategy: str = "every_save"
    hub_token: str | None = None
    hub_private_repo: bool | None = None

    def __init__(self, output_dir: str | None = None, **options: Any) -> None:
        known = {item.name: item for item in fields(self)}
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
        self._check()

    def _check(self) -> None:
        steps = self.gradient_accumulation_steps
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
            raise ConfigError(f"gradient_accumulation_steps must be a whole number of at least 1, not {steps!r}")
        # Hugging Face 5 spells these defaults None: no warm-up ratio, the progress bar as usual, no mapping
        self.warmup_ratio = 0.0 if self.warmup_ratio is None else self.warmup_ratio
        self.disable_tqdm = bool(self.disable_tqdm)
        self.lr_scheduler_type = str(getattr(self.lr_scheduler_type, "value", self.lr_scheduler_type))
        if self.lr_scheduler_type not in LR_SCHEDULES:
            follows = " (it follows the eval metric, and sentsim's schedules follow the step)" \
                if self.lr_scheduler_type in ("reduce_lr_on_plateau", "greedy") else ""
            raise ConfigError(f"SentenceTransformerTrainingArguments: lr_scheduler_type={self.lr_scheduler_type!r} is "
                              f"not supported{follows}; supported: {', '.join(LR_SCHEDULES)}")
        self.lr_scheduler_kwargs = _schedule_options(self.lr_scheduler_kwargs)
        for name, (values, does) in _ONLY_AT.items():
            value = getattr(self, name)
            value = tuple(value) if isinstance(value, list) else getattr(value, "value", value)
            if name == "data_seed" and _same(value, self.seed):
                continue  # the order sentsim gives the data anyway
            if name == "report_to" and value in ("all", ("all",)) and not _installed_trackers():
                continue  # "all" installed trackers: there are none, so nothing is reported, as in theirs
            if not any(_same(value, allowed) for allowed in values):
                raise ConfigError(f"SentenceTransformerTrainingArguments: {name}={value!r} is not supported: {does}")
        for name, allowed in _STRATEGY_FIELDS.items():
            value = str(getattr(getattr(self, name), "value", getattr(self, name)))
            if value not in allowed:
                raise ConfigError(f"{name} must be one of {', '.join(allowed)}, not {value!r}")
            setattr(self, name, value)
        ranked_by_loss = ranks_lowest_first(self.metric_for_best_model)
        if self.greater_is_better is not None and self.greater_is_better == ranked_by_loss:
            raise ConfigError(f"greater_is_better={self.greater_is_better} is not supported with "
                              f"metric_for_best_model={self.metric_for_best_model!r}: sentsim ranks a loss "
                              "lowest-first and every other metric highest-first")
        if self.fp16:
            raise ConfigError("fp16=True is not supported: sentsim trains in fp32 or bf16 (bf16=True)")
        if isinstance(self.prompts, str) and self.prompts.lstrip().startswith("{"):
            # from the command line (HfArgumentParser) a dict of prompts comes as JSON, as theirs reads it
            with contextlib.suppress(json.JSONDecodeError):
                parsed = json.loads(self.prompts)
                self.prompts = parsed if isinstance(parsed, dict) else self.prompts
        if not (self.prompts is None or isinstance(self.prompts, str) or (isinstance(self.prompts, dict) and all(
                isinstance(key, str) and (isinstance(value, str) or (isinstance(value, dict) and all(
                    isinstance(column, str) and isinstance(prompt, str) for column, prompt in value.items())))
                for key, value in self.prompts.items()))):
            raise ConfigError("prompts must be a string, a dict of text column → prompt string, or a dict of dataset "
                              "name → either of those")
        strategy = str(getattr(self.multi_dataset_batch_sampler, "value", self.multi_dataset_batch_sampler))
        if strategy not in tuple(MultiDatasetBatchSamplers):
            raise ConfigError(f"multi_dataset_batch_sampler must be one of "
                              f"{', '.join(map(str, MultiDatasetBatchSamplers))}, not {strategy!r} (sentsim takes no "
                              "sampler class or function)")
        self.multi_dataset_batch_sampler = strategy
        sampler = str(getattr(self.batch_sampler, "value", self.batch_sampler))
        if sampler not in SUPPORTED_BATCH_SAMPLERS:
            raise ConfigError(f"batch_sampler {sampler!r} is not supported: sentsim groups batches by length "
                              "(no_duplicates is accepted: MultipleNegativesRankingLoss masks duplicates)")

    def to_config(self, *, default_dtype: str = "fp32") -> TrainConfig:
        """The equivalent ``TrainConfig`` (epochs must be whole unless ``max_steps`` is set)."""
        epochs = float(self.num_train_epochs)
        if self.max_steps <= 0 and (epochs < 1 or epochs != int(epochs)):
            raise ConfigError(f"num_train_epochs must be a whole number ≥ 1 (or set max_steps), got {epochs}")
        evaluation_steps = (self.eval_steps or self.logging_steps) if self.eval_strategy == "steps" else 0
        return TrainConfig(
            batch_size=self.per_device_train_batch_size * self.gradient_accumulation_steps,
            accumulation_steps=self.gradient_accumulation_steps, eval_batch_size=self.per_device_eval_batch_size,
            learning_rate=self.learning_rate, epochs=max(1, int(epochs)),
            max_steps=self.max_steps if self.max_steps > 0 else None,
            # as sentence-transformers 6.2 on Hugging Face 5: a warmup_ratio is a fractional warmup_steps
            warmup_ratio=0.0, warmup_steps=(self.warmup_steps or self.warmup_ratio) or None,
            lr_schedule=self.lr_scheduler_type, lr_schedule_options=self.lr_scheduler_kwargs or None,
            weight_decay=self.weight_decay, max_grad_norm=self.max_grad_norm, seed=self.seed,
            evaluation_steps=evaluation_steps, log_every=self.logging_steps, log_first_step=self.logging_first_step,
            log_strategy=self.logging_strategy,
            dtype=self.dtype or ("bf16" if self.bf16 else default_dtype), evaluate_base=self.eval_on_start,
            base_ranked=False,
            device="cpu" if self.use_cpu else "auto",
            evaluate_each_epoch=self.eval_strategy == "epoch",
        )


def _installed_trackers() -> list[str]:
    """The experiment trackers Hugging Face's ``report_to="all"`` would report to here (installed ones)."""
    from transformers.integrations import get_available_reporting_integrations

    return list(get_available_reporting_integrations())


def _schedule_options(options: Any) -> dict[str, Any]:
    """``lr_scheduler_kwargs`` as a dict: Hugging Face takes a dict or its JSON text (from the command line)."""
    if options in (None, ""):
        return {}
    if isinstance(options, str):
        try:
            options = json.loads(options)
        except json.JSONDecodeError as error:
            raise ConfigError(f"lr_scheduler_kwargs is not JSON: {error}") from error
    if not isinstance(options, dict):
        raise ConfigError(f"lr_scheduler_kwargs must be a dict of the schedule's options, not {options!r}")
    return dict(options)


def _same(value: Any, allowed: Any) -> bool:
    """Equal, with a bool equal only to a bool (so ``gradient_accumulation_steps=True`` is not taken for 1)."""
    return value is allowed or (value == allowed and not isinstance(value, bool) and not isinstance(allowed, bool))
