"""A whole ``sentsim train`` run: data → base scores → training → test → calibration → run folder."""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, NoReturn

from sentsim.data import PairDataset
from sentsim.encoders.bi_encoder import SentenceTransformer
from sentsim.environment import resolve_device
from sentsim.evaluation.evaluate import EvaluationResult, evaluate_pairs, score_embeddings, spearman_by_dimension
from sentsim.inference.calibration import IsotonicCalibration
from sentsim.persistence.atomic import atomic_directory, atomic_write_json
from sentsim.reporting import write_report
from sentsim.reporting.summary import SUMMARY_FILE, RunSummary
from sentsim.training import signals
from sentsim.training.build import build_model
from sentsim.training.config import TrainConfig
from sentsim.training.loop import refuse_untrainable
from sentsim.training.members import train_members
from sentsim.training.options import RunOptions
from sentsim.training.output_folder import claim_run_output, write_run_marker
from sentsim.training.resume import run_checkpoints, signal_name
from sentsim.training.run_folder import config_record, metrics_log, model_card, write_predictions
from sentsim.training.splits import load_splits
from sentsim.training.summary import summarize

__all__ = ["BOOTSTRAP_RESAMPLES", "RunOptions", "TrainingRun", "run_training"]

#: Bootstrap resamples for the confidence intervals of the final dev/test figures.
BOOTSTRAP_RESAMPLES = 1000
#: Said (summary.json, report, stderr) when no dev evaluation beat the untrained model.
BASE_MODEL_KEPT = ("no dev evaluation improved on the base model (step 0), so the saved model is the base model "
                   "unchanged: try another learning rate, more epochs or other data")


@dataclass
class TrainingRun:
    """A finished run: its summary (``summary.json``) and its folder."""

    summary: RunSummary
    output: Path


def run_training(options: RunOptions, config: TrainConfig) -> TrainingRun:
    """Trains, evaluates and writes the run folder atomically (a crash leaves no half-written run).

    The output is checked and locked first (:func:`~sentsim.training.output_folder.claim_run_output`):
    an existing folder is replaced only with ``options.overwrite`` and only when it is a sentsim run.
    Checkpoints of the unfinished run go to ``OUTPUT.partial/`` (see :mod:`sentsim.training.resume`).

    Under ``accelerate launch`` / ``torchrun`` every process trains on its shard of each batch, but only
    the main one evaluates and writes: the others return None.
    """
    from accelerate import PartialState

    # cpu=True is what makes accelerate use gloo for CPU processes started by torchrun/accelerate launch
    if not PartialState(cpu=resolve_device(config.device) == "cpu").is_main_process:
        return _train_other_process(options, config)  # type: ignore[return-value]
    with claim_run_output(options.output, overwrite=options.overwrite):
        return _run_training(options, config)


def _run_training(options: RunOptions, config: TrainConfig) -> TrainingRun:
    started = time.perf_counter()
    train_set, dev_set, test_set = load_splits(options, unscored_train=config.loss == "mnrl")
    if config.loss != "mnrl":
        refuse_untrainable(train_set.scores)
    checkpoints = run_checkpoints(options, config)
    model = build_model(options).to(resolve_device(config.device))
    evaluate = _evaluator(config)
    base_test = evaluate(model, test_set, bootstrap=0) if test_set is not None else None

    with atomic_directory(options.output) as folder:
        atomic_write_json(folder / "config.json", config_record(options, config, train_set, dev_set, test_set))
        with metrics_log(folder / "metrics.jsonl") as on_record:
            result = train_members(model, options, config, train_set=train_set, dev_set=dev_set,
                                   on_record=on_record, checkpoints=checkpoints)
        # Training is done: a first SIGINT or SIGTERM now waits for the run folder to be written (evaluation,
        # calibration and report take seconds), since stopping here would throw the trained model away.
        with signals.deferred():
            summary = _finish(folder, model, options, config, result, train_set=train_set, dev_set=dev_set,
                              test_set=test_set, base_test=base_test, evaluate=evaluate, started=started)
            late = signals.pending()
    if checkpoints is not None:
        checkpoints.discard()  # the finished run is in place: its checkpoints are no longer needed
    if late is not None:
        raise signals.Interrupted(late, f"interrupted by {signal_name(late)} after training: the run was finished "
                                        f"first and written to {options.output}")
    return TrainingRun(summary=summary, output=options.output)


def _finish(folder: Path, model: SentenceTransformer, options: RunOptions, config: TrainConfig, result: Any, *,
            train_set: PairDataset, dev_set: PairDataset, test_set: PairDataset | None,
            base_test: EvaluationResult | None, evaluate: Callable[..., EvaluationResult],
            started: float) -> RunSummary:
    """Scores dev and test, fits the calibration and writes the model, predictions, summary and report."""
    base_dev = next((record for record in result.records if record["kind"] == "eval" and record["step"] == 0), None)
    # The best checkpoint's dev embeddings, kept from its evaluation: no need to encode dev once more.
    dev = (score_embeddings(dev_set, *result.dev_embeddings, bootstrap=BOOTSTRAP_RESAMPLES, seed=config.seed)
           if result.dev_embeddings is not None else evaluate(model, dev_set, bootstrap=BOOTSTRAP_RESAMPLES))
    model.calibration = IsotonicCalibration.fit(dev.cosines, dev.gold * 5.0, source=f"{dev_set.source} (dev)")
    test = evaluate(model, test_set, bootstrap=BOOTSTRAP_RESAMPLES) if test_set is not None else None
    by_dimension = None
    if test_set is not None and config.matryoshka_dims:  # how the model holds up shortened
        by_dimension = spearman_by_dimension(model, test_set, dims=config.matryoshka_dims,
                                             batch_size=config.eval_batch_size, dtype=config.dtype)

    summary = summarize(options, config, result, dev=dev, test=test, base_dev=base_dev, base_test=base_test,
                        calibration=model.calibration, test_by_dimension=by_dimension)
    if result.best_step == 0:
        summary.warnings.append(BASE_MODEL_KEPT)
    if test is not None and test_set is not None:
        write_predictions(folder / "predictions.jsonl", test_set, test, model.calibration)
    model.save(folder / "model", model_card=model_card(options, config, summary, model, train_set))
    summary.timing.wall_seconds = round(time.perf_counter() - started, 2)
    atomic_write_json(folder / SUMMARY_FILE, summary.to_dict())
    write_report(folder)
    write_run_marker(folder)
    return summary


def leave_process_group() -> bool:
    """Ends this process's part of a multi-process run (``accelerate launch`` / ``torchrun``); True if it had one.

    A process that exits with its gloo process group still open can abort in the group's destructor
    ("terminate called without an active exception", SIGABRT). torchrun then stops the others with
    SIGTERM, the main process among them while it evaluates and writes the run folder, and the run is
    lost. Destroying the group is local to each process (the others are not waited for), but it only
    drops ``torch.distributed``'s own reference: accelerate's state and the DDP wrapper keep the gloo
    objects alive until interpreter teardown, where their worker threads can still abort (seen again in
    CI after the group was destroyed). So a caller that gets True ends the process with
    :func:`exit_without_teardown`.
    """
    import torch.distributed as distributed

    if distributed.is_available() and distributed.is_initialized():
        distributed.destroy_process_group()
        return True
    return False


def exit_without_teardown(code: int) -> NoReturn:
    """Flushes stdout and stderr and ends the process with ``code``, skipping interpreter teardown.

    Only for a process of a multi-process run, after everything it writes is closed: every file of a run
    is written atomically and closed before this point, so what teardown would still do is destroy the
    gloo objects that abort.
    """
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # a closed or broken pipe: nothing can reach it anyway
            stream.flush()
    os._exit(code)


def _train_other_process(options: RunOptions, config: TrainConfig) -> None:
    """A process other than the main one: trains its shards and saves its part of each checkpoint."""
    train_set, dev_set, _ = load_splits(replace(options, evaluate_test=False), unscored_train=config.loss == "mnrl")
    if config.loss != "mnrl":
        refuse_untrainable(train_set.scores)
    model = build_model(options).to(resolve_device(config.device))
    train_members(model, options, config, train_set=train_set, dev_set=dev_set, on_record=lambda entry: None,
                  checkpoints=run_checkpoints(options, config, check_partial=False))


def _evaluator(config: TrainConfig):
    def evaluate(model: SentenceTransformer, dataset: PairDataset, *, bootstrap: int) -> EvaluationResult:
        return evaluate_pairs(model, dataset, batch_size=config.eval_batch_size, dtype=config.dtype,
                              bootstrap=bootstrap, seed=config.seed)

    return evaluate
