"""The training loop: batch → forward → loss → backward → step → schedule → log → evaluate."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from sentsim.encoders.bi_encoder import SentenceTransformer
from sentsim.errors import ConfigError
from sentsim.losses import MatryoshkaLoss, build_loss
from sentsim.training.batching import PairCollator, TokenizedPairs, tokenize_pairs
from sentsim.training.chunks import Chunking
from sentsim.training.config import TrainConfig
from sentsim.training.dropout import fast_dropout
from sentsim.training.heap import keep_freed_memory
from sentsim.training.loop_run import LoopRun, TrainResult
from sentsim.training.resume import Checkpoints
from sentsim.training.signals import stop_at_step_boundaries

logger = logging.getLogger(__name__)

#: An evaluator maps the model to metrics (×100); "spearman_cosine" picks the best checkpoint.
Evaluator = Callable[[SentenceTransformer], dict[str, float]]
PRIMARY_METRIC = "spearman_cosine"


def batch_loss(loss_fn: nn.Module, embeddings: torch.Tensor, targets: torch.Tensor, *, sides: int,
               in_batch: bool) -> torch.Tensor:
    """The loss of one batch: ``embeddings`` stacks its ``sides`` (a's, b's[, negatives']), compared in
    fp32 against the gold scores, or for an in-batch-negative loss against the texts' ids (duplicates)."""
    parts = embeddings.float().chunk(sides)
    if in_batch:
        return loss_fn(*parts, text_ids=targets)
    return loss_fn(parts[0], parts[1], targets.float())


def sentence_embeddings(network: nn.Module, features: dict[str, torch.Tensor]) -> torch.Tensor:
    """The training forward: a batch's token features → its sentence embeddings."""
    return network(features)["sentence_embedding"]


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
    if loss is None and config.matryoshka_dims:
        loss_fn = MatryoshkaLoss(model, loss_fn, config.matryoshka_dims)
    data = TrainingPairs.prepare(model, sentences_a=sentences_a, sentences_b=sentences_b, labels=labels,
                                 negatives=negatives, loss=loss_fn, config=config)
    chunking = Chunking.resolve(config.max_forward_tokens, loss=loss_fn, sides=data.sides,
                                pad_to_multiple_of=config.pad_to_multiple_of, accumulation=config.accumulation_steps)
    return run_loop(model, lengths=data.pairs.lengths, collate=data.collator, forward=sentence_embeddings,
                    loss=data.loss, config=config, evaluator=evaluator, on_record=on_record, quiet=quiet,
                    keep_best=keep_best, checkpoints=checkpoints, chunking=chunking)


@dataclass(frozen=True, kw_only=True)
class TrainingPairs:
    """One training dataset made ready for the loop: its token ids, its collator and its loss over a batch."""

    pairs: TokenizedPairs
    collator: PairCollator
    loss_fn: nn.Module
    #: Texts per row: 2 (a, b), or 3 with hard negatives.
    sides: int
    #: The loss compares every row with every other row's texts (scored by text ids, not gold scores).
    in_batch: bool

    @classmethod
    def prepare(cls, model: SentenceTransformer, *, sentences_a: Sequence[str], sentences_b: Sequence[str],
                labels: Sequence[float] | None, negatives: Sequence[str] | None, loss: nn.Module,
                config: TrainConfig) -> TrainingPairs:
        """Checks that ``loss`` can learn from these rows, then tokenises each distinct text once."""
        in_batch = bool(getattr(loss, "in_batch_negatives", False))
        if not in_batch and labels is None:
            raise ConfigError(f"{type(loss).__name__} needs scored pairs; unscored (anchor, positive) rows "
                              "train with an in-batch-negative loss (mnrl)")
        if negatives is not None and not in_batch:
            raise ConfigError("hard negatives are only used by in-batch-negative losses (mnrl)")
        if not in_batch:
            refuse_untrainable(labels)
        pairs = tokenize_pairs(model.token_ids, sentences_a, sentences_b, None if in_batch else labels,
                               negatives=negatives)
        collator = PairCollator(pairs, model.collate, pad_to_multiple_of=config.pad_to_multiple_of,
                                targets="text_ids" if in_batch else "labels")
        return cls(pairs=pairs, collator=collator, loss_fn=loss, sides=3 if negatives is not None else 2,
                   in_batch=in_batch)

    def loss(self, embeddings: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """The loss of one batch of these rows (``targets``: the collator's labels or text ids)."""
        return batch_loss(self.loss_fn, embeddings, targets, sides=self.sides, in_batch=self.in_batch)


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
    chunking: Chunking | None = None,
    batch_sampler: Callable[[int], Any] | None = None,
) -> TrainResult:
    """The loop every sentsim model trains with (bi-encoder and cross-encoder alike).

    ``chunking``: how batches over a token limit are cut into several forward passes with the same
    gradient (see ``sentsim.training.chunks``); None runs every batch whole. ``batch_sampler(processes)``
    makes the sampler of batches of indices into ``lengths`` (None: length-grouped batches of them all).

    With ``checkpoints``, saves a resumable checkpoint when due and always when SIGINT or SIGTERM
    asks to stop (then raises :class:`~sentsim.training.signals.TrainingInterrupted`); with
    ``checkpoints.resume`` it first restores the latest one and continues exactly where it stopped.

    ``collate`` turns example indices into (features, labels); ``forward`` runs under autocast and
    ``loss`` outside it, in fp32, so a bf16 forward never costs the loss its precision.

    Built on ``accelerate`` so the same loop runs under ``accelerate launch`` with DDP. Mixed
    precision is our own autocast around the forward pass rather than accelerate's, which would
    patch ``model.forward`` for good and leave later evaluation silently in bf16.
    """
    run = LoopRun(model, lengths=lengths, collate=collate, config=config, evaluator=evaluator,
                  on_record=on_record, quiet=quiet, keep_best=keep_best, primary_metric=primary_metric,
                  checkpoints=checkpoints, chunking=chunking, batch_sampler=batch_sampler)
    run.start()
    heap = keep_freed_memory(enabled=config.keep_freed_memory, device_type=run.accelerator.device.type)
    with heap, fast_dropout(model, enabled=config.fast_dropout):
        for epoch in range(run.first_epoch, run.epochs):
            if run.train_epoch(epoch, forward=forward, loss=loss):
                logger.info("early stop after %d evaluations without a better dev score", config.patience)
                break
    return run.finish()
