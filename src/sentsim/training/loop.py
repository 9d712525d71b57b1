"""The training loop: batch → forward → loss → backward → step → schedule → log → evaluate."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.utils.data import BatchSampler, DataLoader, RandomSampler

from sentsim.encoders.bi_encoder import SentenceTransformer
from sentsim.inference.forward import autocast_context, resolve_precision
from sentsim.losses import build_loss
from sentsim.progress import progress_bar
from sentsim.training.batching import LengthGroupedSampler, PairCollator, tokenize_pairs
from sentsim.training.config import TrainConfig

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


def train(
    model: SentenceTransformer,
    *,
    sentences_a: Sequence[str],
    sentences_b: Sequence[str],
    labels: Sequence[float],
    config: TrainConfig,
    loss: nn.Module | None = None,
    evaluator: Evaluator | None = None,
    on_record: Callable[[dict[str, Any]], None] | None = None,
    quiet: bool | None = None,
    keep_best: bool = True,
) -> TrainResult:
    """Fine-tunes ``model`` in place on scored pairs; with an evaluator, ends on the best dev checkpoint
    (``keep_best=False`` keeps the last weights instead, evaluating only for the log).
    """
    from accelerate.utils import set_seed

    set_seed(config.seed)
    loss_fn = loss if loss is not None else build_loss(config.loss, scale=config.loss_scale)
    pairs = tokenize_pairs(model.tokenize, sentences_a, sentences_b, labels)
    collator = PairCollator(pairs, model.collate, pad_to_multiple_of=config.pad_to_multiple_of)

    def forward(network: nn.Module, features: dict[str, torch.Tensor]) -> torch.Tensor:
        return network(features)["sentence_embedding"]

    def pair_loss(embeddings: torch.Tensor, batch_labels: torch.Tensor) -> torch.Tensor:
        embeddings_a, embeddings_b = embeddings.float().chunk(2)
        return loss_fn(embeddings_a, embeddings_b, batch_labels.float())

    return run_loop(model, lengths=pairs.lengths, collate=collator, forward=forward, loss=pair_loss,
                    config=config, evaluator=evaluator, on_record=on_record, quiet=quiet, keep_best=keep_best)


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
) -> TrainResult:
    """The loop every sentsim model trains with (bi-encoder and cross-encoder alike).

    ``collate`` turns example indices into (features, labels); ``forward`` runs under autocast and
    ``loss`` outside it, in fp32, so a bf16 forward never costs the loss its precision.

    Built on ``accelerate`` so the same loop runs under ``accelerate launch`` with DDP. Mixed
    precision is our own autocast around the forward pass rather than accelerate's, which would
    patch ``model.forward`` for good and leave later evaluation silently in bf16.
    """
    from accelerate import Accelerator
    from transformers import get_linear_schedule_with_warmup

    accelerator = Accelerator(mixed_precision="no")
    if config.length_grouping:
        sampler = LengthGroupedSampler(lengths, batch_size=config.batch_size, seed=config.seed,
                                       group_batches=config.group_batches)
    else:
        generator = torch.Generator().manual_seed(config.seed)
        sampler = BatchSampler(RandomSampler(range(len(lengths)), generator=generator), config.batch_size, False)
    loader = DataLoader(range(len(lengths)), batch_sampler=sampler, collate_fn=collate)
    optimizer = _adamw(model, config, device=accelerator.device)
    total_steps = len(loader) * config.epochs
    scheduler = get_linear_schedule_with_warmup(optimizer, config.warmup_for(total_steps), total_steps)
    raw_model = model
    model, optimizer, loader, scheduler = accelerator.prepare(model, optimizer, loader, scheduler)
    precision = resolve_precision(config.precision, accelerator.device)

    records: list[dict[str, Any]] = []

    def record(entry: dict[str, Any]) -> None:
        records.append(entry)
        if on_record is not None and accelerator.is_main_process:
            on_record(entry)

    best: dict[str, Any] = {"step": None, "score": None, "metrics": None, "state": None}
    evals_without_gain = 0
    eval_seconds = 0.0

    def evaluate(step: int, epoch: float) -> bool:
        """Scores dev, keeps the best weights in memory; True when patience has run out."""
        nonlocal evals_without_gain, eval_seconds
        started = time.perf_counter()
        metrics = evaluator(raw_model)
        raw_model.train()
        eval_seconds += time.perf_counter() - started
        record({"kind": "eval", "step": step, "epoch": round(epoch, 4), "split": "dev", **metrics})
        score = metrics[primary_metric]
        if best["score"] is None or score > best["score"]:
            state = {name: tensor.detach().clone() for name, tensor in raw_model.state_dict().items()} \
                if keep_best else None
            best.update(step=step, score=score, metrics=metrics, state=state)
            evals_without_gain = 0
            return False
        evals_without_gain += 1
        return config.patience is not None and evals_without_gain >= config.patience

    if evaluator is not None:
        evaluate(0, 0.0)  # the base model: the checkpoint to beat, and the report's starting point

    step = 0
    pairs_seen = 0
    stopped_early = False
    started = time.perf_counter()
    for epoch in range(config.epochs):
        if hasattr(sampler, "set_epoch"):
            sampler.set_epoch(epoch)
        model.train()
        running_loss, running_count, window_start, window_pairs = 0.0, 0, time.perf_counter(), 0
        bar = progress_bar(loader, desc=f"Epoch {epoch + 1}/{config.epochs}", unit="batch", quiet=quiet)
        for features, batch_labels in bar:
            with autocast_context(precision, accelerator.device):
                outputs = forward(model, features)
            loss_value = loss(outputs, batch_labels)
            accelerator.backward(loss_value)
            if config.max_grad_norm:
                accelerator.clip_grad_norm_(model.parameters(), config.max_grad_norm)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            pairs_seen += len(batch_labels)
            window_pairs += len(batch_labels)
            running_loss += float(loss_value.detach())
            running_count += 1
            if step % config.log_every == 0 or step == total_steps:
                elapsed = time.perf_counter() - window_start
                entry = {"kind": "train", "step": step, "epoch": round(step / len(loader), 4),
                         "loss": running_loss / running_count, "lr": scheduler.get_last_lr()[0],
                         "pairs_per_second": window_pairs / elapsed if elapsed > 0 else 0.0}
                record(entry)
                if hasattr(bar, "set_postfix"):
                    bar.set_postfix(loss=f"{entry['loss']:.4f}", lr=f"{entry['lr']:.2e}",
                                    pairs_s=f"{entry['pairs_per_second']:.0f}")
                running_loss, running_count, window_start, window_pairs = 0.0, 0, time.perf_counter(), 0
            end_of_epoch = step % len(loader) == 0
            if evaluator is not None and (end_of_epoch or (config.evaluation_steps
                                                             and step % config.evaluation_steps == 0)):
                stopped_early = evaluate(step, step / len(loader))
                window_start = time.perf_counter()
                if stopped_early:
                    break
        if hasattr(bar, "close"):
            bar.close()
        if stopped_early:
            logger.info("early stop after %d evaluations without a better dev score", config.patience)
            break
    train_seconds = time.perf_counter() - started - eval_seconds

    if best["state"] is not None:
        raw_model.load_state_dict(best["state"])
    raw_model.eval()
    return TrainResult(
        best_step=best["step"], best_score=best["score"], best_metrics=best["metrics"], steps=step,
        train_seconds=train_seconds, pairs_per_second=pairs_seen / train_seconds if train_seconds > 0 else 0.0,
        stopped_early=stopped_early, records=records,
    )


def _adamw(model: nn.Module, config: TrainConfig, *, device: torch.device) -> torch.optim.Optimizer:
    """AdamW without decay on biases and LayerNorm weights (the BERT convention), fused when possible.

    The fused kernel updates all tensors in one pass; on CPU it cut the optimizer step ~5×.
    """
    decay, no_decay = [], []
    for name, parameter in model.named_parameters():
        if not parameter.requires_grad:
            continue
        (no_decay if parameter.ndim < 2 or "LayerNorm" in name or "layer_norm" in name else decay).append(parameter)
    groups = [{"params": decay, "weight_decay": config.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    try:
        return torch.optim.AdamW(groups, lr=config.learning_rate, fused=device.type in ("cpu", "cuda"))
    except (RuntimeError, TypeError):
        return torch.optim.AdamW(groups, lr=config.learning_rate)
