"""One training run's moving parts: prepared objects, the step, the epoch, evaluation and the result.

``run_loop`` in ``loop.py`` reads top to bottom over these: start (prepare, base evaluation or
resume) → epochs of steps (forward, loss, update, log, evaluate, checkpoint) → finish.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import torch
from torch import nn

from sentsim.environment import resolve_device
from sentsim.inference.forward import autocast_context, precision_reason, resolve_precision
from sentsim.progress import TrainingLog, progress_bar
from sentsim.training.batching import LengthGroupedSampler
from sentsim.training.checkpoint import BestCheckpoint, Throughput
from sentsim.training.chunks import Chunking, chunk_backward
from sentsim.training.config import TrainConfig, interval_steps
from sentsim.training.optimizer import build_optimizer, build_schedule, clip_gradients
from sentsim.training.resume import Checkpoints, at_step_boundary

logger = logging.getLogger(__name__)


@dataclass
class TrainResult:
    """What happened: the best dev score and where, every logged record, and the pure training time."""

    best_step: int | None
    best_score: float | None
    best_metrics: dict[str, float] | None
    steps: int
    train_seconds: float
    pairs_per_second: float
    stopped_early: bool
    records: list[dict[str, Any]] = field(default_factory=list)
    #: The run's planned length (steps, and steps per epoch per process); 0 where unknown.
    total_steps: int = 0
    steps_per_epoch: int = 0
    #: Dev embeddings of the weights the run ended on, when its evaluator kept them (PairSetEvaluator).
    dev_embeddings: tuple[Any, Any] | None = None
    #: Mean loss over all the run's steps in this process; None when unknown (no steps, or resumed from a
    #: checkpoint saved before the sum was kept).
    mean_loss: float | None = None


class LoopRun:
    """The state of one run of the loop, and its three phases: ``start``, ``train_epoch``, ``finish``."""

    def __init__(self, model: nn.Module, *, lengths: Sequence[int], collate: Callable, config: TrainConfig,
                 evaluator: Callable[[nn.Module], dict[str, float]] | None,
                 on_record: Callable[[dict[str, Any]], None] | None, quiet: bool | None, keep_best: bool,
                 primary_metric: str, checkpoints: Checkpoints | None, chunking: Chunking | None = None,
                 batch_sampler: Callable[[int], Any] | None = None) -> None:
        self.raw_model, self.config, self.quiet, self.checkpoints = model, config, quiet, checkpoints
        self.chunking = chunking
        self.on_record = on_record
        (self.accelerator, self.sampler, self.loader, self.epochs, self.total_steps,
         (self.model, self.optimizer, self.scheduler)) = _prepare(model, lengths, collate, config, batch_sampler)
        # intervals given as fractions of the run become step counts, now that the run's length is known
        self.config = config = replace(config, log_every=max(1, interval_steps(config.log_every, self.total_steps)),
                                       evaluation_steps=interval_steps(config.evaluation_steps, self.total_steps))
        self.precision = resolve_precision(config.dtype, self.accelerator.device)
        main = self.accelerator.is_main_process
        self.log = _start_log(config, self.accelerator.device, total_steps=self.total_steps,
                              steps_per_epoch=len(self.loader),
                              evaluations=_evaluations(config, self.total_steps, len(self.loader), evaluator),
                              epochs=self.epochs, quiet=quiet if main else True)
        self.records: list[dict[str, Any]] = []
        self.best = BestCheckpoint(model, evaluator, record=self.record, patience=config.patience,
                                   keep_weights=keep_best,
                                   primary_metric=getattr(evaluator, "primary_metric", None) or primary_metric)
        self.stopped_early = False
        if checkpoints is not None:
            checkpoints.plan(total_steps=self.total_steps, steps_per_epoch=len(self.loader))

    def record(self, entry: dict[str, Any]) -> None:
        self.records.append(entry)
        if self.on_record is not None and self.accelerator.is_main_process:
            self.on_record(entry)

    def start(self) -> None:
        """Restores the latest checkpoint, or scores the base model (unless ``evaluate_base`` is off): the
        checkpoint to beat."""
        if self.checkpoints is not None and self.checkpoints.resume:
            self.throughput = Throughput()
            self.step, self.first_epoch, self.skip, self.base_eval_seconds = self.checkpoints.restore(
                self.accelerator, self.best, self.throughput, self.record, steps_per_epoch=len(self.loader))
            # a checkpoint saved where the run ended (its last step, or patience spent) has nothing left to do
            self.stopped_early = self.best.patience_spent
            if self.config.evaluate_base and not self.config.base_ranked and not self.stopped_early:
                # Hugging Face's eval_on_start evaluates a resumed run too; the restored clock is running, so
                # its time is taken off as any evaluation's is, and the logging window's clock starts after it
                _evaluate(self.best, self.log, self.records, self.step, len(self.loader), self.accelerator,
                          ranked=False)
                self.throughput.restart_clock()
        else:
            if self.config.evaluate_base:
                _evaluate(self.best, self.log, self.records, 0, len(self.loader), self.accelerator,
                          ranked=self.config.base_ranked)
            self.base_eval_seconds = self.best.eval_seconds  # spent before the clock starts: not taken off again
            self.throughput = Throughput()
            self.step, self.first_epoch, self.skip = 0, 0, 0

    def snapshot(self, epoch: int, batch: int) -> dict[str, Any]:
        return {"step": self.step, "epoch": epoch, "batch": batch, "num_processes": self.accelerator.num_processes,
                "records": self.records, "best": self.best.state_dict(), "throughput": self.throughput.state_dict(),
                "base_eval_seconds": self.base_eval_seconds}

    def train_seconds(self) -> float:
        return self.throughput.elapsed() - (self.best.eval_seconds - self.base_eval_seconds)

    def train_epoch(self, epoch: int, *, forward: Callable, loss: Callable) -> bool:
        """One pass over the batches (the rest of it, when resumed mid-epoch); True when the run stopped early."""
        if self.stopped_early or self.step >= self.total_steps:
            return self.stopped_early
        _set_epoch(self.loader, self.sampler, epoch)
        skip = self.skip
        if not skip:
            # What a loader without its own generator drew at each epoch's start: keeps the random
            # numbers (dropout) of runs made before it had one, and so their published figures.
            torch.empty((), dtype=torch.int64).random_()
        self.model.train()
        # The logging window runs on across epochs, as Hugging Face's does, so each step's loss is in one
        # logged mean even where log_every does not divide the epoch.
        if skip:
            self.throughput.restart_clock()  # the saved window carries on
        batches = self.accelerator.skip_first_batches(self.loader, skip) if skip else self.loader
        bar = progress_bar(batches, desc=f"Epoch {epoch + 1}/{self.epochs}", unit="batch",
                           quiet=self.quiet if self.accelerator.is_main_process else True)
        done = False
        for batch, (features, batch_labels) in enumerate(bar, start=skip + 1):
            done = self.train_step(epoch, batch, features, batch_labels, forward=forward, loss=loss, bar=bar)
            if done:
                break
        self.skip = 0
        if hasattr(bar, "close"):
            bar.close()
        return self.stopped_early

    def train_step(self, epoch: int, batch: int, features: dict[str, torch.Tensor], batch_labels: torch.Tensor, *,
                   forward: Callable, loss: Callable, bar: Any) -> bool:
        """forward → loss → update → log → evaluate when due → checkpoint; True when the epoch must end."""
        loss_value = self.backpropagate(features, batch_labels, forward=forward, loss=loss)
        lr = self.scheduler.get_last_lr()[0]  # the rate this step trains at, which Hugging Face logs too
        norm = _update(self.model, self.accelerator, self.optimizer, self.scheduler,
                       max_grad_norm=self.config.max_grad_norm)
        self.step += 1
        step = self.step
        self.throughput.add(len(batch_labels), loss_float := float(loss_value.detach()))
        self.log.step(step, pairs=self.throughput.pairs, loss=loss_float, train_seconds=self.train_seconds())
        if _log_due(self.config, step, total_steps=self.total_steps, steps_per_epoch=len(self.loader)):
            entry = {"kind": "train", "step": step, "epoch": round(step / len(self.loader), 4),
                     **self.throughput.take(lr=lr)}
            if norm is not None:  # this step's, as Hugging Face logs it
                entry["grad_norm"] = round(norm, 6)
            self.record(entry)
            _show(bar, entry)
        evaluated = self.best.due(step, steps_per_epoch=len(self.loader) if self.config.evaluate_each_epoch else 0,
                                  every=self.config.evaluation_steps)
        if evaluated:
            self.throughput.pause()  # the window's pairs/s counts training time only
            self.stopped_early = _evaluate(self.best, self.log, self.records, step, len(self.loader),
                                           self.accelerator)
            self.throughput.restart_clock()
        at_step_boundary(self.checkpoints, self.accelerator, self.best, step=step,
                         evaluated=evaluated and not self.stopped_early,
                         snapshot=lambda: self.snapshot(epoch, batch), epoch_end=batch >= len(self.loader),
                         final=self.stopped_early or step >= self.total_steps)
        return self.stopped_early or step >= self.total_steps

    def backpropagate(self, features: dict[str, torch.Tensor], batch_labels: torch.Tensor, *, forward: Callable,
                      loss: Callable) -> torch.Tensor:
        """The batch's gradients, in one forward pass or, over the token limit, in chunks; returns its loss."""
        def autocast() -> Any:
            return autocast_context(self.precision, self.accelerator.device)

        parts = self.chunking.parts(features) if self.chunking is not None else 1
        if parts > 1:
            return chunk_backward(self.model, features, batch_labels, chunking=self.chunking, parts=parts,
                                  forward=forward, loss=loss, autocast=autocast, backward=self.accelerator.backward,
                                  no_sync=lambda: self.accelerator.no_sync(self.model))
        with autocast():
            outputs = forward(self.model, features)
        loss_value = loss(outputs, batch_labels)
        self.accelerator.backward(loss_value)
        return loss_value

    def finish(self) -> TrainResult:
        """Ends on the best checkpoint (or the last weights), in eval mode, with the pure training time."""
        train_seconds = max(0.0, self.train_seconds())
        self.best.restore()
        self.raw_model.eval()
        return TrainResult(
            best_step=self.best.step, best_score=self.best.score, best_metrics=self.best.metrics, steps=self.step,
            train_seconds=train_seconds,
            pairs_per_second=self.throughput.pairs / train_seconds if train_seconds > 0 else 0.0,
            stopped_early=self.stopped_early, records=self.records, total_steps=self.total_steps,
            steps_per_epoch=len(self.loader),
            mean_loss=(self.throughput.total_loss / self.step
                       if self.step and self.throughput.total_steps == self.step else None),
        )


def _prepare(model: nn.Module, lengths: Sequence[int], collate: Callable, config: TrainConfig,
             batch_sampler: Callable[[int], Any] | None = None) -> tuple:
    """Accelerator, sampler, loader, epochs and steps, and the prepared (model, optimizer, schedule)."""
    from accelerate import Accelerator
    from accelerate.utils import DistributedDataParallelKwargs
    from torch.utils.data import DataLoader

    # cpu=True keeps accelerate off a GPU when the run is on the CPU (and is what makes it use gloo
    # under torchrun). Under DDP some weights (a BERT pooler that mean pooling never reads) get no
    # gradient, which DDP must be told about.
    accelerator = Accelerator(cpu=resolve_device(config.device) == "cpu", mixed_precision="no",
                              kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=True)])
    processes = accelerator.num_processes
    sampler = batch_sampler(processes) if batch_sampler else _batch_sampler(lengths, config, processes=processes)
    # The loader's own generator: making an iterator then draws nothing from the global RNG, so a run
    # resumed mid-epoch sees the same random numbers (dropout) as one that never stopped.
    loader = accelerator.prepare(DataLoader(range(len(lengths)), batch_sampler=sampler, collate_fn=collate,
                                            generator=torch.Generator().manual_seed(config.seed)))
    optimizer = build_optimizer(model, config, device=accelerator.device)
    # max_steps (the Trainer adapter's option) overrides epochs: as many passes as it takes, then stop.
    # len(loader) is per process: each of N processes takes every N-th batch.
    epochs = -(-config.max_steps // len(loader)) if config.max_steps else config.epochs
    total_steps = config.max_steps or len(loader) * config.epochs
    scheduler = build_schedule(optimizer, config, total_steps=total_steps, processes=accelerator.num_processes)
    model, optimizer, scheduler = accelerator.prepare(model, optimizer, scheduler)
    return accelerator, sampler, loader, epochs, total_steps, (model, optimizer, scheduler)


def _log_due(config: TrainConfig, step: int, *, total_steps: int, steps_per_epoch: int) -> bool:
    """Whether ``step`` logs a training record: every ``log_every`` steps and the last (``log_strategy``
    "steps"), each epoch's end ("epoch"), never ("no"); step 1 too with ``log_first_step``."""
    if step == 1 and config.log_first_step:
        return True
    if config.log_strategy == "epoch":
        return step % steps_per_epoch == 0 or step == total_steps
    return config.log_strategy == "steps" and (step % config.log_every == 0 or step == total_steps)


def _update(model: nn.Module, accelerator: Any, optimizer: Any, scheduler: Any, *,
            max_grad_norm: float | None) -> float | None:
    """clip → optimizer step → schedule step → clear gradients; the gradient norm before clipping (None
    without clipping, which is what computes it)."""
    norm = float(clip_gradients(model, accelerator, max_grad_norm)) if max_grad_norm else None
    optimizer.step()
    scheduler.step()
    optimizer.zero_grad(set_to_none=True)
    return norm


def _start_log(config: TrainConfig, device: torch.device, *, total_steps: int, steps_per_epoch: int, epochs: int,
               evaluations: int, quiet: bool | None) -> TrainingLog:
    """The run's status lines, opened with the start line: device, dtype and why, steps, epochs, batch."""
    log = TrainingLog(total_steps, steps_per_epoch=steps_per_epoch, evaluations=evaluations, quiet=quiet)
    log.start(device=str(device), dtype=resolve_precision(config.dtype, device),
              reason=precision_reason(config.dtype, device), epochs=epochs, batch_size=config.batch_size)
    return log


def _evaluations(config: TrainConfig, total_steps: int, steps_per_epoch: int, evaluator: Any) -> int:
    """Dev evaluations still to come after the base model's (for the estimated duration)."""
    if evaluator is None:
        return 0
    every = {*range(steps_per_epoch, total_steps + 1, steps_per_epoch)} if config.evaluate_each_epoch else set()
    if config.evaluation_steps:
        every |= {*range(config.evaluation_steps, total_steps + 1, config.evaluation_steps)}
    return len(every)


def _evaluate(best: BestCheckpoint, log: TrainingLog, records: list[dict[str, Any]], step: int,
              steps_per_epoch: int, accelerator: Any, *, ranked: bool = True) -> bool:
    """Only the main process evaluates; the others wait for its verdict (stop early or not)."""
    if accelerator.num_processes == 1:
        return _evaluate_here(best, log, records, step, steps_per_epoch, ranked=ranked)
    from accelerate.utils import broadcast_object_list

    verdict = [_evaluate_here(best, log, records, step, steps_per_epoch, ranked=ranked)
               if accelerator.is_main_process else False]
    return bool(broadcast_object_list(verdict, from_process=0)[0])


def _evaluate_here(best: BestCheckpoint, log: TrainingLog, records: list[dict[str, Any]], step: int,
                   steps_per_epoch: int, *, ranked: bool) -> bool:
    """Scores dev (when there is an evaluator) and logs one line with the score and the best so far."""
    spent = best.eval_seconds
    stopped = best.evaluate(step, step / steps_per_epoch, ranked=ranked)
    if best.evaluator is not None and records and records[-1].get("kind") == "eval":
        metric = getattr(best.evaluator, "primary_metric", None) or best.primary_metric
        score = float(records[-1][metric])
        top = max(score, best.score if best.score is not None else score)
        # a loss ranked lowest-first through its negation is shown as itself
        negated = getattr(best.evaluator, "negated_metric", None)
        if negated is not None and metric != negated:
            metric, score, top = negated, -score, -top
        log.evaluation(step, metric=metric, score=score, best=top, seconds=best.eval_seconds - spent)
    return stopped


def _set_epoch(loader: Any, sampler: Any, epoch: int) -> None:
    """The epoch decides the sampler's order; accelerate's loader would otherwise reset it to its own count."""
    if hasattr(loader, "set_epoch"):
        loader.set_epoch(epoch)
    if hasattr(sampler, "set_epoch"):
        sampler.set_epoch(epoch)


def _show(bar: Any, entry: dict[str, Any]) -> None:
    if hasattr(bar, "set_postfix"):
        bar.set_postfix(loss=f"{entry['loss']:.4f}", lr=f"{entry['lr']:.2e}",
                        pairs_s=f"{entry['pairs_per_second']:.0f}")


def _batch_sampler(lengths: Sequence[int], config: TrainConfig, *, processes: int = 1) -> Any:
    """Length-grouped batches (little padding), or with ``length_grouping=False`` plainly shuffled ones."""
    if config.length_grouping:
        return LengthGroupedSampler(lengths, batch_size=config.batch_size, seed=config.seed,
                                    group_batches=config.group_batches, short_batch_last=processes > 1)
    from torch.utils.data import BatchSampler, RandomSampler

    generator = torch.Generator().manual_seed(config.seed)
    return BatchSampler(RandomSampler(range(len(lengths)), generator=generator), config.batch_size, False)
