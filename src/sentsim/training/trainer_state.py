"""Hugging Face's ``TrainerState`` as the Trainer adapter keeps it: ``trainer.state``, ``trainer.save_state()``
and each checkpoint's ``trainer_state.json``.

Why Hugging Face's fields and defaults: scripts and tools read them (``log_history`` to plot a run,
``best_model_checkpoint`` to pick a folder) and ``transformers.TrainerState.load_from_json`` must read the
files. sentsim's loop keeps its own state apart (``sentsim_state.json`` in a checkpoint).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from sentsim.persistence.atomic import atomic_write_json
from sentsim.training.config import interval_steps

__all__ = ["TrainerState", "log_entry", "trainer_state"]


@dataclass
class TrainerState:
    """``transformers.TrainerState``'s fields, with its defaults."""

    epoch: float | None = 0
    global_step: int = 0
    max_steps: int = 0
    logging_steps: int = 500
    eval_steps: int = 500
    save_steps: int = 500
    train_batch_size: int | None = None
    num_train_epochs: int = 0
    num_input_tokens_seen: int = 0
    total_flos: float = 0
    log_history: list[dict[str, Any]] = field(default_factory=list)
    best_metric: float | None = None
    best_global_step: int | None = None
    #: The best evaluation's checkpoint folder, when one was saved at that step.
    best_model_checkpoint: str | None = None
    is_local_process_zero: bool = True
    is_world_process_zero: bool = True
    is_hyper_param_search: bool = False
    trial_name: str | None = None
    trial_params: dict[str, Any] | None = None
    stateful_callbacks: dict[str, Any] = field(default_factory=dict)

    def save_to_json(self, json_path: str | os.PathLike[str]) -> None:
        """Written whole or not at all, keys sorted, as Hugging Face writes it."""
        atomic_write_json(json_path, dict(sorted(asdict(self).items())))

    @classmethod
    def load_from_json(cls, json_path: str | os.PathLike[str]) -> TrainerState:
        with open(json_path, encoding="utf-8") as file:
            return cls(**json.load(file))


def log_entry(record: dict[str, Any], *, steps_per_epoch: int) -> dict[str, Any]:
    """One of the loop's records as Hugging Face's Trainer logs it in ``log_history``.

    A training record becomes ``{"loss", "grad_norm", "learning_rate", "epoch", "step"}`` (sentsim's
    ``pairs_per_second`` kept after them); an evaluation is its metrics then ``epoch`` and ``step``. So code
    that tells entries apart as Hugging Face's users do (``"loss" in entry``, ``"eval_loss" in entry``,
    ``pandas.DataFrame(log_history)``) and ``transformers.modelcard.parse_log_history`` read them.
    The epoch is the exact fraction step / ``steps_per_epoch``, as theirs (the loop's records round it).
    """
    from sentsim.training.trainer_eval import reported

    kind = record.get("kind")
    place = {"epoch": record["step"] / steps_per_epoch, "step": record["step"]}
    if kind == "train":
        norm = {"grad_norm": record["grad_norm"]} if "grad_norm" in record else {}
        extra = {key: value for key, value in record.items()
                 if key not in {"kind", "loss", "grad_norm", "lr", "epoch", "step"}}
        return {"loss": record["loss"], **norm, "learning_rate": record["lr"], **place, **extra}
    if kind == "eval":
        metrics = {key: value for key, value in reported(record).items()
                   if key not in {"kind", "split", "epoch", "step"}}
        return {**metrics, **place}
    return reported(record)


def trainer_state(*, step: int, total_steps: int, steps_per_epoch: int, records: Sequence[dict[str, Any]],
                  best_step: int | None, best_score: float | None, best_metrics: dict[str, Any] | None,
                  best_folder: str | None, reporting: dict[str, Any]) -> TrainerState:
    """The state after ``step`` of a run of ``total_steps``: the Trainer's at the end, a checkpoint's on the way.

    ``reporting`` holds the arguments' logging_steps, eval_steps and save_steps (fractions below 1 are
    resolved against the run, as Hugging Face does) and train_batch_size. A loss ranks through its negative
    (``NEGATIVE_LOSS`` in the best metrics); Hugging Face reports the loss itself as ``best_metric``.
    """
    from sentsim.training.trainer_eval import NEGATIVE_LOSS

    steps_per_epoch = max(1, steps_per_epoch)
    ranked = best_score is not None
    return TrainerState(
        epoch=step / steps_per_epoch, global_step=step, max_steps=total_steps,
        **{name: interval_steps(reporting.get(name) or 500, total_steps)
           for name in ("logging_steps", "eval_steps", "save_steps")},
        train_batch_size=reporting.get("train_batch_size"), num_train_epochs=-(-total_steps // steps_per_epoch),
        log_history=[log_entry(record, steps_per_epoch=steps_per_epoch) for record in records],
        best_metric=(-best_score if NEGATIVE_LOSS in (best_metrics or {}) else best_score) if ranked else None,
        best_global_step=best_step if ranked else None, best_model_checkpoint=best_folder)
