"""``sentsim train --seeds N``: the same recipe once per seed, the spread of their scores, and resuming.

Each seed's run folder (``OUTPUT/seed-<n>/``) is written whole or not at all (``run_training``), so
a stop between or during seeds leaves the finished ones intact. ``OUTPUT/seeds-plan.json``, written
first and removed last, records what was asked; ``sentsim train --resume OUTPUT`` reads it, keeps
every finished seed and trains only the others (an unfinished seed starts again: seeds keep no
checkpoints). Before this, a stop in the third seed of an hour-long comparison lost all three.
"""

from __future__ import annotations

import shlex
import signal
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from sentsim.errors import ConfigError
from sentsim.persistence.atomic import atomic_write_json
from sentsim.persistence.locks import output_lock
from sentsim.reporting.summary import SUMMARY_FILE, RunSummary
from sentsim.training import signals
from sentsim.training.config import TrainConfig
from sentsim.training.options import RunOptions
from sentsim.training.output_folder import claim_run_output, write_run_marker
from sentsim.training.resume import read_record, run_record
from sentsim.training.run import run_training

__all__ = ["SEEDS_FILE", "SEEDS_PLAN", "read_seeds_plan", "run_seeds"]

SEEDS_FILE = "seeds.json"
SEEDS_PLAN = "seeds-plan.json"


def run_seeds(options: RunOptions, config: TrainConfig, *, seeds: list[int], resume: bool = False) -> dict[str, Any]:
    """The same recipe once per seed (``OUTPUT/seed-<n>/``), then mean ± sample std in ``seeds.json``.

    One run's score moves by a few tenths with the seed alone; comparing recipes needs the spread.
    ``resume``: continue the unfinished seeds run at ``options.output`` (see :func:`read_seeds_plan`).
    """
    if resume:
        with output_lock(options.output):
            read_seeds_plan(options.output)  # again under the lock: another resume may have just finished it
            return _run_seeds(options, config, seeds=seeds)
    with claim_run_output(options.output, overwrite=options.overwrite):
        options.output.mkdir(exist_ok=True)
        atomic_write_json(options.output / SEEDS_PLAN, {**run_record(options, config), "seeds": seeds})
        write_run_marker(options.output, kind="seeds")  # now: --overwrite may clear a stopped run too
        return _run_seeds(options, config, seeds=seeds)


def read_seeds_plan(output: str | Path) -> dict[str, Any]:
    """The plan of the unfinished ``--seeds`` run at ``output``; ConfigError saying why there is none."""
    output = Path(output)
    plan = output / SEEDS_PLAN
    if not plan.is_file():
        if (output / SEEDS_FILE).is_file():
            raise ConfigError(f"{output} is a finished --seeds run: there is nothing to resume")
        raise ConfigError(f"no unfinished --seeds run to resume at {output} (no {SEEDS_PLAN} in it)")
    record = read_record(plan, what="seeds plan")
    seeds = record.get("seeds")
    if not (isinstance(seeds, list) and seeds and all(isinstance(seed, int) for seed in seeds)):
        raise ConfigError(f"{plan}: not a sentsim seeds plan")
    return record


def _run_seeds(options: RunOptions, config: TrainConfig, *, seeds: list[int]) -> dict[str, Any]:
    runs = []
    for seed in seeds:
        output = options.output / f"seed-{seed}"
        if (output / SUMMARY_FILE).is_file():  # finished before a stop: kept as it is
            summary = RunSummary.load(output)
        else:
            try:
                summary = run_training(replace(options, output=output, resumable=False, resume=False),
                                       replace(config, seed=seed)).summary
            except signals.Interrupted as stop:
                raise signals.Interrupted(stop.signum, _stopped_message(stop, options.output, runs)) from None
        runs.append({"seed": seed, "output": str(output),
                     "dev_spearman_cosine": summary.dev["spearman_cosine"],
                     "test_spearman_cosine": (summary.test or {}).get("spearman_cosine"),
                     "best_step": summary.best_step, "train_seconds": summary.timing.train_seconds,
                     "wall_seconds": summary.timing.wall_seconds})
    mean: dict[str, float] = {}
    std: dict[str, float] = {}
    for key in ("dev_spearman_cosine", "test_spearman_cosine", "train_seconds", "wall_seconds"):
        values = [run[key] for run in runs if run[key] is not None]
        if values:
            mean[key] = round(float(np.mean(values)), 4)
            std[key] = round(float(np.std(values, ddof=1)) if len(values) > 1 else 0.0, 4)
    result = {"recipe": config.to_dict(), "base_model": options.base_model, "seeds": seeds, "runs": runs,
              "mean": mean, "std": std, "command": options.command}
    atomic_write_json(options.output / SEEDS_FILE, result)
    write_run_marker(options.output, kind="seeds")
    (options.output / SEEDS_PLAN).unlink(missing_ok=True)
    return result


def _stopped_message(stop: signals.Interrupted, output: Path, finished: list[dict[str, Any]]) -> str:
    kept = ", ".join(str(run["seed"]) for run in finished) or "none yet"
    return (f"interrupted by {signal.Signals(stop.signum).name}; the finished seeds in {output} are kept "
            f"({kept}); continue with `sentsim train --resume {shlex.quote(str(output))}`")
