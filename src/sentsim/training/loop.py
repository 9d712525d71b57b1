"""The training loop: batch → forward → loss → backward → step → schedule → log → evaluate."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from sentsim.encoders.bi_encoder import SentenceTransformer
from sentsim.environment import resolve_device
from sentsim.errors import ConfigError
from sentsim.inference.forward import autocast_context, precision_reason, resolve_precision
from sentsim.losses import build_loss
from sentsim.progress import TrainingLog, progress_bar
from sentsim.training.batching import LengthGroupedSampler, PairCollator, tokenize_pairs
from sentsim.training.checkpoint import BestCheckpoint, Throughput
from sentsim.training.config import TrainConfig
from sentsim.training.optimizer import build_optimizer, build_schedule
from sentsim.training.resume import Checkpoints, at_step_boundary
from sentsim.training.signals import stop_at_step_boundaries

logger = logging.getLogger(__name__)

#: An evaluator maps the model to metrics (×100); "spearman_cosine" picks the best checkpoint.
Evaluator = Callable[[SentenceTransformer], dict[str, float]]
PRIMARY_METRIC = "spearman_cosine"


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
    #: Dev embeddings of the weights the run ended on, when its evaluator kept them (PairSetEvaluator).
    dev_embeddings: tuple[Any, Any] | None = None


def train(
    model: SentenceTransformer,
    *,
    sentences_a: Sequence[str],
    sentences_b: Sequence[str],
    labels: Sequence[float] | None = None,
    negatives: Sequence[str] | None = None,
    config: TrainConfig,
    loss: nn.Module | None = None,
    evaluator: Evaluator | None = None,
    on_record: Callable[[dict[str, Any]], None] | None = None,
    quiet: bool | None = None,
    keep_best: bool = True,
    checkpoints: Checkpoints | None = None,
) -> TrainResult:
    """Fine-tunes ``model`` in place on scored pairs; with an evaluator, ends on the best dev checkpoint
    (``keep_best=False`` keeps the last weights instead, evaluating only for the log). ``checkpoints``:
    where to save resumable checkpoints (and whether to start from the latest), see ``run_loop``.

    An in-batch-negative loss (``mnrl``) trains on unscored (anchor = ``sentences_a``, positive =
    ``sentences_b``[, ``negatives``]) rows instead: ``labels`` are then not needed.
    """
    from accelerate.utils import set_seed

    set_seed(config.seed)
    loss_fn = loss if loss is not None else build_loss(config.loss, scale=config.loss_scale)
    in_batch = bool(getattr(loss_fn, "in_batch_negatives", False))
    if not in_batch and labels is None:
        raise ConfigError(f"{type(loss_fn).__name__} needs scored pairs; unscored (anchor, positive) rows "
                          "train with an in-batch-negative loss (mnrl)")
    if negatives is not None and not in_batch:
        raise ConfigError("hard negatives are only used by in-batch-negative losses (mnrl)")
    if not in_batch:
        refuse_untrainable(labels)
    pairs = tokenize_pairs(model.token_ids, sentences_a, sentences_b, None if in_batch else labels,
                           negatives=negatives)
    collator = PairCollator(pairs, model.collate, pad_to_multiple_of=config.pad_to_multiple_of,
                            targets="text_ids" if in_batch else "labels")
    sides = 3 if negatives is not None else 2

    def forward(network: nn.Module, features: dict[str, torch.Tensor]) -> torch.Tensor:
        return network(features)["sentence_embedding"]

    def pair_loss(embeddings: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        parts = embeddings.float().chunk(sides)
        if in_batch:
            return loss_fn(*parts, text_ids=targets)
        return loss_fn(parts[0], parts[1], targets.float())

    return run_loop(model, lengths=pairs.lengths, collate=collator, forward=forward, loss=pair_loss,
                    config=config, evaluator=evaluator, on_record=on_record, quiet=quiet, keep_best=keep_best,
                    checkpoints=checkpoints)


def refuse_untrainable(labels: Sequence[float] | None) -> None:
    """ConfigError for scored training data nothing can be learnt from: one pair, or one score for all."""
    if labels is None:
        return
    if len(labels) < 2:
        raise ConfigError(f"{len(labels)} training pair{'s' if len(labels) != 1 else ''}: training needs at least "
                          "two pairs with different scores")
    if min(labels) == max(labels):
        raise ConfigError(f"all {len(labels)} training pairs have the same score ({float(labels[0]):g}): a loss "
                          "learns nothing about similarity from constant scores")


@stop_at_step_boundaries
def run_loop(
    model: nn.Module,
    *,
    lengths: Sequence[int],
    collate: Callable[[list[int]], tuple[dict[str, torch.Tensor], torch.Tensor]],
    forward: Callable[[nn.Module, dict[str, torch.Tensor]], torch.Tensor],
    loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    config: TrainConfig,
    evaluator: Callable[[nn.Module], dict[str, float]] | None = None,
    on_record: Callable[[dict[str, Any]], None] | None = None,
    quiet: bool | None = None,
    keep_best: bool = True,
    primary_metric: str = PRIMARY_METRIC,
    checkpoints: Checkpoints | None = None,
) -> TrainResult:
    """The loop every sentsim model trains with (bi-encoder and cross-encoder alike).

    With ``checkpoints``, saves a resumable checkpoint when due and always when SIGINT or SIGTERM
    asks to stop (then raises :class:`~sentsim.training.signals.TrainingInterrupted`); with
    ``checkpoints.resume`` it first restores the latest one and continues exactly where it stopped.

    ``collate`` turns example indices into (features, labels); ``forward`` runs under autocast and
    ``loss`` outside it, in fp32, so a bf16 forward never costs the loss its precision.

    Built on ``accelerate`` so the same loop runs under ``accelerate launch`` with DDP. Mixed
    precision is our own autocast around the forward pass rather than accelerate's, which would
    patch ``model.forward`` for good and leave later evaluation silently in bf16.
    """
    raw_model = model
    accelerator, sampler, loader, epochs, total_steps, (model, optimizer, scheduler) = _prepare(
        model, lengths, collate, config)
    precision = resolve_precision(config.dtype, accelerator.device)
    log = _start_log(config, accelerator.device, total_steps=total_steps, steps_per_epoch=len(loader),
                     epochs=epochs, evaluations=_evaluations(config, total_steps, len(loader), evaluator),
                     quiet=quiet if accelerator.is_main_process else True)
    records: list[dict[str, Any]] = []

    def record(entry: dict[str, Any]) -> None:
        records.append(entry)
        if on_record is not None and accelerator.is_main_process:
            on_record(entry)

    best = BestCheckpoint(raw_model, evaluator, record=record, patience=config.patience, keep_weights=keep_best,
                          primary_metric=getattr(evaluator, "primary_metric", None) or primary_metric)
    if checkpoints is not None and checkpoints.resume:
        throughput = Throughput()
        step, first_epoch, skip, base_eval_seconds = checkpoints.restore(accelerator, best, throughput, record,
                                                                         steps_per_epoch=len(loader))
    else:
        _evaluate(best, log, records, 0, len(loader), accelerator)  # the base model: the checkpoint to beat
        base_eval_seconds = best.eval_seconds  # spent before the clock starts: not to be taken off again
        throughput = Throughput()
        step, first_epoch, skip = 0, 0, 0
    stopped_early = False

    def snapshot(epoch: int, batch: int) -> dict[str, Any]:
        return {"step": step, "epoch": epoch, "batch": batch, "num_processes": accelerator.num_processes,
                "records": records, "best": best.state_dict(), "throughput": throughput.state_dict(),
                "base_eval_seconds": base_eval_seconds}

    for epoch in range(first_epoch, epochs):
        _set_epoch(loader, sampler, epoch)
        if not skip:
            # What a loader without its own generator drew at each epoch's start: keeps the random
            # numbers (dropout) of runs made before it had one, and so their published figures.
            torch.empty((), dtype=torch.int64).random_()
        model.train()
        if skip:
            throughput.restart_clock()  # the saved window carries on
        else:
            throughput.start_window()
        batches = accelerator.skip_first_batches(loader, skip) if skip else loader
        bar = progress_bar(batches, desc=f"Epoch {epoch + 1}/{epochs}", unit="batch",
                           quiet=quiet if accelerator.is_main_process else True)
        for batch, (features, batch_labels) in enumerate(bar, start=skip + 1):
            with autocast_context(precision, accelerator.device):
                outputs = forward(model, features)
            loss_value = loss(outputs, batch_labels)
            _update(loss_value, model, accelerator, optimizer, scheduler, max_grad_norm=config.max_grad_norm)
            step += 1
            throughput.add(len(batch_labels), loss_float := float(loss_value.detach()))
            log.step(step, pairs=throughput.pairs, loss=loss_float,
                     train_seconds=throughput.elapsed() - (best.eval_seconds - base_eval_seconds))
            if step % config.log_every == 0 or step == total_steps:
                entry = {"kind": "train", "step": step, "epoch": round(step / len(loader), 4),
                         **throughput.take(lr=scheduler.get_last_lr()[0])}
                record(entry)
                _show(bar, entry)
            evaluated = best.due(step, steps_per_epoch=len(loader), every=config.evaluation_steps)
            if evaluated:
                stopped_early = _evaluate(best, log, records, step, len(loader), accelerator)
                throughput.restart_clock()
            at_step_boundary(checkpoints, accelerator, best, step=step, evaluated=evaluated and not stopped_early,
                           snapshot=lambda epoch=epoch, batch=batch: snapshot(epoch, batch))
            if stopped_early:
                break
            if step >= total_steps:
                break
        skip = 0
        if hasattr(bar, "close"):
            bar.close()
        if stopped_early:
            logger.info("early stop after %d evaluations without a better dev score", config.patience)
            break
    train_seconds = max(0.0, throughput.elapsed() - (best.eval_seconds - base_eval_seconds))
    best.restore()
    raw_model.eval()
    return TrainResult(
        best_step=best.step, best_score=best.score, best_metrics=best.metrics, steps=step,
        train_seconds=train_seconds,
        pairs_per_second=throughput.pairs / train_seconds if train_seconds > 0 else 0.0,
        stopped_early=stopped_early, records=records,
    )


def _prepare(model: nn.Module, lengths: Sequence[int], collate: Callable, config: TrainConfig) -> tuple:
    """Accelerator, sampler, loader, epochs and steps, and the prepared (model, optimizer, schedule)."""
    from accelerate import Accelerator
    from accelerate.utils import DistributedDataParallelKwargs
    from torch.utils.data import DataLoader

    # cpu=True keeps accelerate off a GPU when the run is on the CPU (and is what makes it use gloo
    # under torchrun). Under DDP some weights (a BERT pooler that mean pooling never reads) get no
    # gradient, which DDP must be told about.
    accelerator = Accelerator(cpu=resolve_device(config.device) == "cpu", mixed_precision="no",
                              kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=True)])
    sampler = _batch_sampler(lengths, config, processes=accelerator.num_processes)
    # The loader's own generator: making an iterator then draws nothing from the global RNG, so a run
    # resumed mid-epoch sees the same random numbers (dropout) as one that never stopped.
    loader = accelerator.prepare(DataLoader(range(len(lengths)), batch_sampler=sampler, collate_fn=collate,
                                            generator=torch.Generator().manual_seed(config.seed)))
    optimizer = build_optimizer(model, config, device=accelerator.device)
    # max_steps (the Trainer adapter's option) overrides epochs: as many passes as it takes, then stop.
    # len(loader) is per process: each of N processes takes every N-th batch.
    epochs = -(-config.max_steps // len(loader)) if config.max_steps else config.epochs
    total_steps = config.max_steps or len(loader) * config.epochs
    # accelerate steps a prepared schedule once per process at each step, so it is built N times as long.
    scheduler = build_schedule(optimizer, config, total_steps=total_steps * accelerator.num_processes)
    model, optimizer, scheduler = accelerator.prepare(model, optimizer, scheduler)
    return accelerator, sampler, loader, epochs, total_steps, (model, optimizer, scheduler)


def _update(loss_value: torch.Tensor, model: nn.Module, accelerator: Any, optimizer: Any, scheduler: Any, *,
            max_grad_norm: float | None) -> None:
    """backward → clip → optimizer step → schedule step → clear gradients."""
    accelerator.backward(loss_value)
    if max_grad_norm:
        accelerator.clip_grad_norm_(model.parameters(), max_grad_norm)
    optimizer.step()
    scheduler.step()
    optimizer.zero_grad(set_to_none=True)


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
    every = {*range(steps_per_epoch, total_steps + 1, steps_per_epoch)}
    if config.evaluation_steps:
        every |= {*range(config.evaluation_steps, total_steps + 1, config.evaluation_steps)}
    return len(every)


def _evaluate(best: BestCheckpoint, log: TrainingLog, records: list[dict[str, Any]], step: int,
              steps_per_epoch: int, accelerator: Any) -> bool:
    """Only the main process evaluates; the others wait for its verdict (stop early or not)."""
    if accelerator.num_processes == 1:
        return _evaluate_here(best, log, records, step, steps_per_epoch)
    from accelerate.utils import broadcast_object_list

    verdict = [_evaluate_here(best, log, records, step, steps_per_epoch) if accelerator.is_main_process else False]
    return bool(broadcast_object_list(verdict, from_process=0)[0])


def _evaluate_here(best: BestCheckpoint, log: TrainingLog, records: list[dict[str, Any]], step: int,
                   steps_per_epoch: int) -> bool:
    """Scores dev (when there is an evaluator) and logs one line with the score and the best so far."""
    spent = best.eval_seconds
    stopped = best.evaluate(step, step / steps_per_epoch)
    if best.evaluator is not None and records and records[-1].get("kind") == "eval":
        metric = getattr(best.evaluator, "primary_metric", None) or best.primary_metric
        score = float(records[-1][metric])
        log.evaluation(step, metric=metric, score=score, best=max(score, best.score if best.score is not None
                                                                  else score),
                       seconds=best.eval_seconds - spent)
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
