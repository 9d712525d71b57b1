"""Resumable checkpoints of an unfinished run in ``RUN.partial/``: save, keep the last K, find, load.

The run folder itself is built hidden and renamed into place only when the run is complete, so a
checkpoint cannot live in it: a kill would leave it in a temporary folder nobody can name. It lives
in the visible sibling ``RUN.partial/`` instead, which ``sentsim train --resume RUN`` finds:

    RUN.partial/resume.json              the options and hyper-parameters, and the command line
    RUN.partial/checkpoint-00000120/     accelerate's save_state (weights, optimizer, schedule, RNG
                                         states of every process) + trainer_state.json (step, epoch,
                                         batch, best-so-far, patience, metrics log) + best.safetensors

Each checkpoint is written as ``.checkpoint-N.tmp`` and renamed when complete, so a checkpoint
folder without the dot is whole. The folder is removed once the finished run folder is in place.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sentsim.errors import ConfigError
from sentsim.persistence.atomic import atomic_write_json
from sentsim.training import signals
from sentsim.training.checkpoint import BestCheckpoint, Throughput

__all__ = ["PARTIAL_SUFFIX", "RESUME_FILE", "STATE_FILE", "Checkpoints", "at_step_boundary", "complete_checkpoints",
           "latest_checkpoint", "partial_folder", "read_record", "read_resume", "run_checkpoints", "run_record"]

PARTIAL_SUFFIX = ".partial"
RESUME_FILE = "resume.json"
STATE_FILE = "trainer_state.json"
BEST_FILE = "best.safetensors"
_PREFIX = "checkpoint-"


def partial_folder(output: str | os.PathLike[str]) -> Path:
    """Where the checkpoints of the run that will be written to ``output`` live: ``output.partial``."""
    path = Path(output)
    return path.with_name(path.name + PARTIAL_SUFFIX)


def latest_checkpoint(folder: Path) -> Path | None:
    """The newest complete checkpoint in ``folder``."""
    complete = complete_checkpoints(folder)
    return complete[-1] if complete else None


def complete_checkpoints(folder: Path, *, complete: bool = True) -> list[Path]:
    """The complete checkpoints in ``folder``, oldest first: ``checkpoint-<step>`` folders holding their state
    file (any such folder with ``complete=False``), ordered by step (the CLI's names are zero-padded,
    Hugging Face's are not)."""
    if not folder.is_dir():
        return []
    steps = {path: _step_of(path) for path in folder.glob(f"{_PREFIX}*")
             if (path / STATE_FILE).is_file() or (not complete and path.is_dir())}
    return sorted((path for path, step in steps.items() if step is not None), key=lambda path: steps[path])


def _step_of(path: Path) -> int | None:
    suffix = path.name[len(_PREFIX):]
    return int(suffix) if suffix.isascii() and suffix.isdigit() else None


def read_resume(output: str | os.PathLike[str]) -> dict[str, Any]:
    """The saved ``resume.json`` of the unfinished run at ``output``; ConfigError saying why there is none."""
    partial = partial_folder(output)
    if not partial.is_dir():
        if (Path(output) / "summary.json").is_file():
            raise ConfigError(f"{output} is a finished run: there is nothing to resume")
        raise ConfigError(f"no unfinished run to resume at {output} (no {partial.name} folder next to it)")
    if latest_checkpoint(partial) is None:
        raise ConfigError(f"{partial} holds no complete checkpoint (the run was stopped before its first); "
                          f"delete {partial} and start the run again")
    return read_record(partial / RESUME_FILE, what="resume record")


def run_record(options: Any, config: Any) -> dict[str, Any]:
    """What ``--resume`` needs to rebuild a run: its options (JSON-safe) and its training config."""
    from dataclasses import asdict

    return {"options": json.loads(json.dumps(asdict(options), default=str)), "config": config.to_dict()}


def read_record(path: Path, *, what: str) -> dict[str, Any]:
    """A saved :func:`run_record` (with whatever else its writer added); ConfigError if unreadable or not one."""
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ConfigError(f"{path}: cannot be read ({error})") from error
    if not isinstance(record, dict) or not isinstance(record.get("config"), dict) \
            or not isinstance(record.get("options"), dict):
        raise ConfigError(f"{path}: not a sentsim {what}")
    return record


def resume_command(output: Path, processes: int) -> str:
    command = f"sentsim train --resume {shlex.quote(str(output))}"
    return command if processes == 1 else \
        f"accelerate launch --num_processes {processes} -m sentsim train --resume {shlex.quote(str(output))}"


@dataclass
class Checkpoints:
    """Where and when one training run saves checkpoints, and whether it starts from the latest one.

    Without ``save_steps`` it saves only when a signal stops the run; with it, every ``save_steps``
    steps and after each dev evaluation, keeping the newest ``total_limit`` (None: all of them).
    Subclasses place and name the folders otherwise (the Trainer adapter's ``OUTPUT/checkpoint-N``).
    """

    output: Path
    record: dict[str, Any]
    save_steps: int | None = None
    total_limit: int | None = 2
    resume: bool = False
    last_saved_step: int | None = field(default=None, init=False)
    #: The step this run was resumed from (None: not resumed).
    resumed_from: int | None = field(default=None, init=False)
    _best_file: tuple[int | None, Path] | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        if self.save_steps is not None and self.save_steps < 1:
            raise ConfigError("--save-steps must be at least 1")
        if self.total_limit is not None and self.total_limit < 1:
            raise ConfigError("--save-total-limit must be at least 1")

    #: Where accelerate's state goes inside a checkpoint folder ("": the folder itself).
    state_subfolder = ""
    #: Whether pruning spares the best step's folder (the CLI's need not: the best weights travel in each).
    spares_best = False

    @property
    def folder(self) -> Path:
        return partial_folder(self.output)

    def checkpoint_name(self, step: int) -> str:
        return f"{_PREFIX}{step:08d}"

    def plan(self, *, total_steps: int, steps_per_epoch: int) -> None:
        """Told by the loop, before its first step, how long the run is (for savers that need it)."""

    def due(self, step: int, *, evaluated: bool, epoch_end: bool = False, final: bool = False,
            improved: bool = False) -> bool:
        """Whether to save after ``step``; ``epoch_end``, ``final`` and ``improved`` (a new best) are for
        subclasses with other schedules."""
        return self.save_steps is not None and (step % self.save_steps == 0 or evaluated)

    def save(self, accelerator: Any, *, step: int, state: dict[str, Any],
             best_weights: Callable[[], dict[str, Any] | None]) -> Path:
        """Writes checkpoint ``step`` on every process (each saves its RNG state), renames it when whole."""
        final = self.folder / self.checkpoint_name(step)
        if self.last_saved_step == step:
            return final
        temporary = self.folder / f".{final.name}.tmp"
        if accelerator.is_main_process:
            self.folder.mkdir(parents=True, exist_ok=True)
            shutil.rmtree(temporary, ignore_errors=True)
            temporary.mkdir()
            self._write_record(temporary)
        accelerator.wait_for_everyone()
        self._write_state(accelerator, temporary / self.state_subfolder)
        accelerator.wait_for_everyone()
        if accelerator.is_main_process:
            self._write_best(temporary / BEST_FILE, state["best"].get("step"), best_weights)
            self._write_extras(temporary)
            self._write_trainer_state(temporary, state)
            shutil.rmtree(final, ignore_errors=True)
            os.replace(temporary, final)
            if (final / BEST_FILE).is_file():
                self._best_file = (state["best"].get("step"), final / BEST_FILE)
            self._prune(best_step=state["best"].get("step"))
        accelerator.wait_for_everyone()
        self.last_saved_step = step
        return final

    def _write_state(self, accelerator: Any, folder: Path) -> None:
        """What a resume restores besides the trainer state: accelerate's save_state, on every process."""
        accelerator.save_state(str(folder))

    def _write_record(self, temporary: Path) -> None:
        """The run's record, once per run: ``RUN.partial/resume.json``, which ``--resume`` reads."""
        if not (self.folder / RESUME_FILE).is_file():
            atomic_write_json(self.folder / RESUME_FILE, self.record)

    def _write_extras(self, temporary: Path) -> None:
        """Anything else a checkpoint holds (nothing here)."""

    def _write_trainer_state(self, temporary: Path, state: dict[str, Any]) -> None:
        """The loop's state (step, epoch, best so far, metrics log), which a resume reads back; written last."""
        atomic_write_json(temporary / STATE_FILE, state)

    def _read_trainer_state(self, checkpoint: Path) -> dict[str, Any]:
        return json.loads((checkpoint / STATE_FILE).read_text(encoding="utf-8"))

    def _write_best(self, path: Path, best_step: int | None, best_weights: Callable[[], dict | None]) -> None:
        """The best weights so far; hard-linked from the previous checkpoint while the best has not moved."""
        if self._best_file is not None and self._best_file[0] == best_step and self._best_file[1].is_file():
            try:
                os.link(self._best_file[1], path)
            except OSError:
                shutil.copyfile(self._best_file[1], path)
        else:
            weights = best_weights()
            if weights is None:
                return
            from safetensors.torch import save_file

            save_file({name: tensor.detach().cpu().contiguous().clone() for name, tensor in weights.items()}, path)

    def _prune(self, *, best_step: int | None = None) -> None:
        """Keeps the newest ``total_limit`` checkpoints, and with ``spares_best`` the ``best_step`` one too."""
        if self.total_limit is None:
            return
        spared = self.checkpoint_name(best_step) if self.spares_best and best_step is not None else None
        for old in complete_checkpoints(self.folder)[: -self.total_limit]:
            if old.name != spared:
                shutil.rmtree(old, ignore_errors=True)

    def checkpoint_to_load(self) -> Path:
        """The checkpoint a resumed run starts from: the latest complete one."""
        checkpoint = latest_checkpoint(self.folder)
        if checkpoint is None:
            raise ConfigError(f"no complete checkpoint in {self.folder}")
        return checkpoint

    def load(self, accelerator: Any) -> tuple[dict[str, Any], dict[str, Any] | None]:
        """Restores weights, optimizer, schedule and RNG states from the checkpoint to load; returns the
        trainer state and the best weights so far (None when they were not kept)."""
        checkpoint = self.checkpoint_to_load()
        state = self._read_trainer_state(checkpoint)
        if state.get("num_processes", 1) != accelerator.num_processes:
            raise ConfigError(f"{checkpoint} was saved by {state.get('num_processes')} processes; resume it with "
                              f"as many (this run has {accelerator.num_processes})")
        accelerator.load_state(str(checkpoint / self.state_subfolder))
        best = None
        if (checkpoint / BEST_FILE).is_file():
            from safetensors.torch import load_file

            best = load_file(checkpoint / BEST_FILE, device=str(accelerator.device))
            self._best_file = (state["best"].get("step"), checkpoint / BEST_FILE)
        self.last_saved_step = self.resumed_from = state["step"]
        return state, best

    def restore(self, accelerator: Any, best: BestCheckpoint, throughput: Throughput,
                record: Callable[[dict[str, Any]], None], *, steps_per_epoch: int) -> tuple[int, int, int, float]:
        """Loads the latest checkpoint into the loop's parts, the metrics log so far through ``record``;
        returns (step, epoch, batches of that epoch done, the base model's evaluation seconds)."""
        state, best_weights = self.load(accelerator)
        for entry in state["records"]:
            record(entry)
        best.load_state_dict(state["best"], best_weights)
        throughput.load_state_dict(state["throughput"])
        epoch, batch = state["epoch"], state["batch"]
        if batch >= steps_per_epoch:
            epoch, batch = epoch + 1, 0
        return state["step"], epoch, batch, state["base_eval_seconds"]

    def discard(self) -> None:
        """Removes ``RUN.partial`` once the finished run folder is in place."""
        shutil.rmtree(self.folder, ignore_errors=True)


def run_checkpoints(options: Any, config: Any, *, check_partial: bool = True) -> Checkpoints | None:
    """The checkpoints of one ``sentsim train`` run (None where a run cannot be resumed: ``--average``).

    A new run refuses to start while ``OUTPUT.partial`` holds an unfinished one: resume it or delete it.
    """
    partial = partial_folder(options.output)
    if check_partial and not options.resume and partial.exists():
        raise ConfigError(f"{partial} holds an unfinished run for {options.output}: continue it with "
                          f"`sentsim train --resume {shlex.quote(str(options.output))}`, or delete {partial} "
                          "to start again")
    if not options.resumable or config.average > 1:
        if options.save_steps is not None or options.resume:
            raise ConfigError("checkpoints (--save-steps, --resume) need a single run: not with --average or --seeds")
        return None
    return Checkpoints(Path(options.output), run_record(options, config), save_steps=options.save_steps,
                       total_limit=options.save_total_limit, resume=options.resume)


def at_step_boundary(checkpoints: Checkpoints | None, accelerator: Any, best: BestCheckpoint, *, step: int,
                     evaluated: bool, snapshot: Callable[[], dict[str, Any]], epoch_end: bool = False,
                     final: bool = False) -> None:
    """Saves a checkpoint when due; when a signal asked to stop, saves one (where it can) and stops."""
    signum = _signal_of_any_process(accelerator)
    if checkpoints is None:
        if signum:
            raise signals.Interrupted(signum, f"interrupted by {signal_name(signum)}: this run (several averaged "
                                              "runs, or several seeds) cannot be resumed; nothing was saved")
        return
    if signum or checkpoints.due(step, evaluated=evaluated, epoch_end=epoch_end, final=final,
                                 improved=evaluated and best.step == step):
        path = checkpoints.save(accelerator, step=step, state=snapshot(), best_weights=lambda: best.state)
        if signum:
            raise signals.TrainingInterrupted(
                signum, checkpoint=path, resume_command=resume_command(checkpoints.output, accelerator.num_processes))


def signal_name(signum: int) -> str:
    import signal

    return signal.Signals(signum).name


def _signal_of_any_process(accelerator: Any) -> int:
    """The signal any process received (so all of them stop at the same step), or 0."""
    signum = signals.pending() or 0
    if accelerator.num_processes == 1:
        return signum
    import torch

    return int(accelerator.gather(torch.tensor([signum], device=accelerator.device)).max().item())
