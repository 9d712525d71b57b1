"""The Trainer adapter's checkpoints, where sentence-transformers users look for them: ``OUTPUT_DIR/checkpoint-N``.

Why: a script written for sentence-transformers' Trainer expects ``save_strategy`` / ``save_steps`` /
``save_total_limit`` to leave ``checkpoint-<step>`` folders that load as models, and
``trainer.train(resume_from_checkpoint=True)`` to continue a run that was stopped. Each folder here is
both: a model in the sentence-transformers layout (``SentenceTransformer("out/checkpoint-500")``) and
sentsim's training state beside it, the same state the CLI's ``--resume`` restores::

    checkpoint-500/modules.json, model.safetensors, ...   the model, as ``model.save`` writes it
    checkpoint-500/training_state/                        accelerate's save_state: optimizer, schedule
                                                          and RNG states (the weights are the model's)
    checkpoint-500/trainer_state.json                     Hugging Face's TrainerState (global_step, epoch,
                                                          log_history, best_metric, best_model_checkpoint)
    checkpoint-500/sentsim_state.json                     the loop's state: step, epoch, batch, best so far
    checkpoint-500/best.safetensors                       the best weights so far (with an evaluator)
    checkpoint-500/sentsim_run.json                       the run's settings, checked when resuming

The weights are stored once, in the model's own files: a resume loads them from there (accelerate's
state skips them), so a checkpoint is no bigger than Hugging Face's plus sentsim's small files.
Checkpoints written before that, with the weights in ``training_state/`` too, still resume from there.
With ``save_only_model`` a checkpoint is the model and the three JSON files only: smaller, and (as
Hugging Face warns) not resumable; resuming from one is refused with a message.
A checkpoint is written as ``.checkpoint-N.tmp`` and renamed when whole, so a crash never leaves a
half-written ``checkpoint-N``. Unlike the CLI's ``RUN.partial``, these folders stay when the run ends,
as Hugging Face's do; ``save_total_limit`` keeps the newest ones.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sentsim.errors import ConfigError
from sentsim.persistence.atomic import atomic_write_json
from sentsim.training.config import interval_steps
from sentsim.training.resume import STATE_FILE, Checkpoints, complete_checkpoints, read_record
from sentsim.training.trainer_state import TrainerState, trainer_state

__all__ = ["RUN_FILE", "TrainerCheckpoints", "trainer_checkpoints"]

RUN_FILE = "sentsim_run.json"
#: The loop's own state; trainer_state.json beside it is Hugging Face's (earlier checkpoints kept the loop's there).
LOOP_STATE_FILE = "sentsim_state.json"
STATE_SUBFOLDER = "training_state"
#: Settings that fix which batch comes at which step: a resumed run must keep them to continue the same run.
_FIXED = ("batch_size", "seed", "length_grouping", "group_batches", "accumulation_steps")
#: What a record saved before a setting existed meant by it.
_FIXED_BEFORE = {"accumulation_steps": 1}


@dataclass(kw_only=True)
class TrainerCheckpoints(Checkpoints):
    """Checkpoints on Hugging Face's schedule: ``strategy`` "steps" (every ``save_steps``, and at the end),
    "epoch" (each epoch's end) or "best" (each new best evaluation); ``resume_from`` names the one to start
    from when resuming (None: the latest)."""

    model: Any
    strategy: str = "steps"
    #: HF's ``save_steps``: a step count, or below 1 a fraction of the run's steps.
    every: float = 500
    resume_from: Path | None = None
    #: Hugging Face's ``save_only_model``: no optimizer, schedule, RNG states or best weights, so no resume.
    model_only: bool = False
    #: For Hugging Face's trainer_state.json: logging_steps, eval_steps (each a count, or below 1 a fraction
    #: of the run) and train_batch_size; its save_steps is ``every``.
    reporting: dict[str, Any] = field(default_factory=dict)
    _every_steps: int = field(default=0, init=False)
    _run: tuple[int, int] = field(default=(0, 1), init=False)  # total steps, steps per epoch

    state_subfolder = STATE_SUBFOLDER
    spares_best = True  # as Hugging Face's rotation: the newest save_total_limit, and the best one's folder

    @property
    def folder(self) -> Path:
        return self.output

    def checkpoint_name(self, step: int) -> str:
        return f"checkpoint-{step}"

    def plan(self, *, total_steps: int, steps_per_epoch: int) -> None:
        # as Hugging Face: a fraction of the run, rounded up
        self._every_steps = interval_steps(self.every, total_steps)
        self._run = (total_steps, max(1, steps_per_epoch))

    def due(self, step: int, *, evaluated: bool, epoch_end: bool = False, final: bool = False,
            improved: bool = False) -> bool:
        if self.strategy == "no":  # a resumed run that saves nothing more
            return False
        if self.strategy == "epoch":
            return epoch_end or final  # Hugging Face ends a run cut short by max_steps with an epoch end
        if self.strategy == "best":
            return improved
        return final or (self._every_steps > 0 and step % self._every_steps == 0)

    def best_checkpoint(self, best_step: int | None) -> str | None:
        """The folder of the best step's checkpoint, when one was saved there (Hugging Face's
        ``state.best_model_checkpoint``)."""
        folder = self.folder / self.checkpoint_name(best_step) if best_step is not None else None
        return str(folder) if folder is not None and (folder / STATE_FILE).is_file() else None

    def save(self, accelerator: Any, **kwargs: Any) -> Path:
        # accelerate would write the weights a second time (~90 MB for MiniLM): the model files hold them
        handle = accelerator.register_save_state_pre_hook(_without_weights)
        try:
            return super().save(accelerator, **kwargs)
        finally:
            handle.remove()

    def load(self, accelerator: Any) -> tuple[dict[str, Any], dict[str, Any] | None]:
        handle = accelerator.register_load_state_pre_hook(self._weights_from_model_files)
        try:
            return super().load(accelerator)
        finally:
            handle.remove()

    def _write_state(self, accelerator: Any, folder: Path) -> None:
        if not self.model_only:
            super()._write_state(accelerator, folder)

    def _write_best(self, path: Path, best_step: int | None, best_weights: Any) -> None:
        if not self.model_only:  # the best weights so far are for a resume only
            super()._write_best(path, best_step, best_weights)

    def _write_trainer_state(self, temporary: Path, state: dict[str, Any]) -> None:
        atomic_write_json(temporary / LOOP_STATE_FILE, state)
        self._hugging_face_state(state).save_to_json(temporary / STATE_FILE)

    def _read_trainer_state(self, checkpoint: Path) -> dict[str, Any]:
        loop_state = checkpoint / LOOP_STATE_FILE
        if not loop_state.is_file():  # written before the loop's state moved out of trainer_state.json
            return super()._read_trainer_state(checkpoint)
        return json.loads(loop_state.read_text(encoding="utf-8"))

    def _hugging_face_state(self, state: dict[str, Any]) -> TrainerState:
        """Hugging Face's ``TrainerState`` at this checkpoint (``TrainerState.load_from_json`` reads it)."""
        best, (total_steps, steps_per_epoch) = state["best"], self._run
        best_step = best.get("step")
        # the best step's folder: this one, being saved, or an earlier one still there
        best_folder = str(self.folder / self.checkpoint_name(best_step)) if best_step == state["step"] \
            else self.best_checkpoint(best_step)
        return trainer_state(
            step=state["step"], total_steps=total_steps, steps_per_epoch=steps_per_epoch, records=state["records"],
            best_step=best_step, best_score=best.get("score"), best_metrics=best.get("metrics"),
            best_folder=best_folder, reporting={**self.reporting, "save_steps": self.every})

    def _weights_from_model_files(self, models: list[Any], input_dir: str) -> None:
        """accelerate's load hook: the weights come from the checkpoint's model files, unless its state holds them."""
        state = Path(input_dir)
        if any(state.glob("model*.safetensors")) or any(state.glob("pytorch_model*.bin")):
            return  # a checkpoint written before the weights were stored once
        saved = type(self.model)(str(state.parent), device="cpu")
        self.model.load_state_dict(saved.state_dict())  # strict: a missing or extra weight is an error
        models.clear()

    def _write_record(self, temporary: Path) -> None:
        atomic_write_json(temporary / RUN_FILE, self.record)

    def _write_extras(self, temporary: Path) -> None:
        self.model.save(temporary)

    def checkpoint_to_load(self) -> Path:
        checkpoint = self.resume_from
        if checkpoint is None:  # as Hugging Face: the newest checkpoint-<step> folder, whatever it holds
            folders = complete_checkpoints(self.folder, complete=False)
            if not folders:
                raise ConfigError(f"No valid checkpoint found in output directory ({self.folder})")
            checkpoint = folders[-1]
        _check_resumable(checkpoint, self.record)
        return checkpoint

    def discard(self) -> None:
        """Kept: the folders are the user's, as with Hugging Face's Trainer."""


def trainer_checkpoints(*, output_dir: str | None, strategy: str, save_steps: float, total_limit: int | None,
                        resume_from_checkpoint: bool | str | None, model: Any, config: Any,
                        train_rows: Sequence[int], overwrite: bool = False,
                        model_only: bool = False, reporting: dict[str, Any] | None = None
                        ) -> TrainerCheckpoints | None:
    """The checkpoints of one ``SentenceTransformerTrainer.train()`` call, or None when it saves none.

    A new run (no ``resume_from_checkpoint``) refuses to start over an earlier run's checkpoints in
    ``output_dir``: it would overwrite some and ``save_total_limit`` would delete others, leaving two
    runs' folders mixed. ``overwrite`` (``overwrite_output_dir=True``) removes them first instead.
    """
    resume = resume_from_checkpoint not in (None, False)
    if not output_dir:
        if resume:
            raise ConfigError("resume_from_checkpoint needs the training arguments' output_dir")
        return None
    if strategy == "no" and not resume:
        return None
    if total_limit is not None and total_limit < 1:
        raise ConfigError(f"save_total_limit must be at least 1 (or None: keep all), not {total_limit}")
    if strategy == "steps" and not (isinstance(save_steps, int | float) and save_steps > 0):
        raise ConfigError(f"save_steps must be above 0, not {save_steps}")
    folder = Path(output_dir)
    if folder.exists() and not folder.is_dir():
        raise ConfigError(f"output_dir {folder} is a file, not a folder: checkpoints cannot be saved in it")
    record = {"config": config.to_dict(), "options": {"train_rows": list(train_rows)}}
    resume_from = Path(resume_from_checkpoint) if isinstance(resume_from_checkpoint, str | Path) else None
    earlier = complete_checkpoints(folder, complete=False)  # whatever a checkpoint-<step> folder holds
    if earlier and not resume and not overwrite:
        names = ", ".join(path.name for path in earlier[-3:])
        raise ConfigError(f"{folder} already holds checkpoints of an earlier run ({names}): continue it with "
                          "trainer.train(resume_from_checkpoint=True), or pass overwrite_output_dir=True to "
                          "replace them, or move them, or choose another output_dir")
    # the checkpoint to resume from is checked, with its own message, when it loads
    target = (resume_from or (earlier[-1] if earlier else None)) if resume else None
    strangers = [path.name for path in earlier if not (path / STATE_FILE).is_file()
                 and (target is None or path.resolve() != target.resolve())]
    if strangers:  # a save at that step would replace the folder, resumed run or not
        raise ConfigError(f"{folder}: folders named like checkpoints hold none ({', '.join(strangers[:3])}); the run "
                          "could write over them (overwrite_output_dir replaces only checkpoints): move them, or "
                          "choose another output_dir")
    if not resume:
        for old in earlier:  # asked for: the new run's folders must not mix with the earlier run's
            shutil.rmtree(old)
    return TrainerCheckpoints(folder, record, total_limit=total_limit, resume=resume, model=model,
                              strategy=strategy, every=save_steps, resume_from=resume_from, model_only=model_only,
                              reporting=reporting or {})


def _without_weights(models: list[Any], weights: list[dict[str, Any]], output_dir: str) -> None:
    """accelerate's save hook: its state leaves the weights out (the checkpoint's model files hold them)."""
    weights.clear()


def _check_resumable(checkpoint: Path, record: dict[str, Any]) -> None:
    """ConfigError unless ``checkpoint`` is a whole sentsim checkpoint of this same run."""
    if not checkpoint.is_dir():
        raise ConfigError(f"resume_from_checkpoint: {checkpoint} is not a folder")
    if (checkpoint / STATE_FILE).is_file() and (checkpoint / RUN_FILE).is_file() \
            and not (checkpoint / STATE_SUBFOLDER).exists():
        raise ConfigError(f"resume_from_checkpoint: {checkpoint} was saved with save_only_model=True: it holds the "
                          "model but not the optimizer, schedule and RNG states a resume needs. Load it with "
                          "SentenceTransformer(path) and train from there as a new run")
    if not (checkpoint / STATE_SUBFOLDER).is_dir() or not (checkpoint / STATE_FILE).is_file():
        hint = " (a sentence-transformers checkpoint: load it with SentenceTransformer(path) and train from " \
               "there)" if (checkpoint / "optimizer.pt").is_file() else ""
        raise ConfigError(f"resume_from_checkpoint: {checkpoint} is not a whole sentsim checkpoint: it lacks "
                          f"{STATE_SUBFOLDER}/ or {STATE_FILE}{hint}")
    if not (checkpoint / RUN_FILE).is_file():
        raise ConfigError(f"resume_from_checkpoint: {checkpoint} lacks {RUN_FILE}")
    saved = read_record(checkpoint / RUN_FILE, what="run record")
    before = {name: saved["config"].get(name, _FIXED_BEFORE.get(name)) for name in _FIXED}
    changed = [f"{name} {before[name]!r} → {record['config'].get(name)!r}" for name in _FIXED
               if before[name] != record["config"].get(name)]
    if saved["options"].get("train_rows") != record["options"]["train_rows"]:
        changed.append(f"train rows {saved['options'].get('train_rows')} → {record['options']['train_rows']}")
    if changed:
        raise ConfigError(f"resume_from_checkpoint: {checkpoint} was saved by a run with other data or batches "
                          f"({'; '.join(changed)}); resuming would not continue that run. Use the same "
                          "datasets and arguments, or start a new run in another output_dir")
