"""One training run, or N runs with seeds seed … seed+N−1 averaged into one model ("model soup")."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from sentsim.data import PairDataset
from sentsim.encoders.bi_encoder import SentenceTransformer
from sentsim.evaluation.evaluators import PairSetEvaluator
from sentsim.training.build import build_model
from sentsim.training.config import TrainConfig
from sentsim.training.loop import TrainResult, train
from sentsim.training.options import RunOptions
from sentsim.training.resume import Checkpoints
from sentsim.training.soup import average_into


def train_members(model: SentenceTransformer, options: RunOptions, config: TrainConfig, *, train_set: PairDataset,
                  dev_set: PairDataset, on_record, checkpoints: Checkpoints | None = None) -> TrainResult:
    """One run, or with ``config.average = N`` N runs (seeds seed … seed+N−1) averaged into ``model``.

    Each run keeps its best dev checkpoint before averaging. Their records go to one log with
    steps counted on across runs and a ``run`` number, then one record for the averaged model.
    """
    evaluator = PairSetEvaluator(dev_set, batch_size=config.eval_batch_size, dtype=config.dtype)

    def fit(member: SentenceTransformer, seed: int, log) -> TrainResult:
        return train(member, sentences_a=train_set.sentences1, sentences_b=train_set.sentences2,
                     labels=train_set.scores, negatives=getattr(train_set, "negatives", None),
                     config=replace(config, seed=seed, average=1), on_record=log,
                     quiet=options.quiet, evaluator=evaluator, checkpoints=checkpoints)

    if config.average == 1:
        result = fit(model, config.seed, on_record)
        result.dev_embeddings = evaluator.embeddings_scoring(result.best_score)  # the restored best checkpoint's
        if checkpoints is not None and checkpoints.resumed_from is not None \
                and (result.best_step or 0) <= checkpoints.resumed_from:
            result.dev_embeddings = None  # the best was scored before the resume: not by this evaluator
        return result
    states, results, records, offset = [], [], [], 0
    for index in range(config.average):
        member = model if index == 0 else build_model(options)

        def member_record(entry: dict[str, Any], *, run: int = index + 1, shift: int = offset) -> None:
            shifted = {**entry, "step": entry["step"] + shift, "run": run}
            records.append(shifted)
            on_record(shifted)

        result = fit(member, config.seed + index, member_record)
        states.append({name: tensor.detach().clone() for name, tensor in member.state_dict().items()})
        results.append(result)
        offset += result.steps
        del member
    average_into(model, states)
    metrics = evaluator(model)
    record = {"kind": "eval", "step": offset, "epoch": float(config.epochs), "split": "dev", "run": "average",
              **metrics}
    records.append(record)
    on_record(record)
    train_seconds = sum(result.train_seconds for result in results)
    pairs_seen = sum(result.pairs_per_second * result.train_seconds for result in results)
    return TrainResult(
        best_step=None, best_score=metrics["spearman_cosine"], best_metrics=metrics, steps=offset,
        train_seconds=train_seconds, pairs_per_second=pairs_seen / train_seconds if train_seconds > 0 else 0.0,
        stopped_early=any(result.stopped_early for result in results), records=records,
    )
