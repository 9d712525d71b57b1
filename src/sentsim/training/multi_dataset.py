"""Training on several datasets at once, each with its own loss: sentence-transformers' multi-dataset training.

Every batch comes from one dataset, length-grouped within it, and is scored by that dataset's loss; the
datasets take turns as ``MultiDatasetBatchSamplers`` says. The loop itself does not change: the datasets'
rows are numbered one after the other, the sampler yields batches of those global numbers, and the
collator puts the batch's dataset in the first column of its targets, where the loss reads it back.
That keeps chunked forwards and resumable checkpoints working as they do for one dataset.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from itertools import accumulate
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import Sampler

from sentsim.encoders.bi_encoder import SentenceTransformer
from sentsim.errors import ConfigError
from sentsim.training.batch_samplers import MultiDatasetBatchSamplers
from sentsim.training.batching import LengthGroupedSampler
from sentsim.training.chunks import Chunking, is_per_pair
from sentsim.training.config import TrainConfig
from sentsim.training.loop import Evaluator, TrainingPairs, run_loop, sentence_embeddings
from sentsim.training.loop_run import TrainResult
from sentsim.training.resume import Checkpoints

__all__ = ["DatasetTurns", "TaskCollator", "TrainingTask", "train_tasks"]


@dataclass(frozen=True, kw_only=True)
class TrainingTask:
    """One dataset of a multi-dataset run: its text columns in order, its gold scores and its loss.

    ``texts`` holds (a, b) or (anchor, positive, negative) columns; ``labels`` is None for an
    in-batch-negative loss, which learns from the rows themselves.
    """

    name: str
    texts: Sequence[Sequence[str]]
    labels: Sequence[float] | None
    loss: nn.Module


class DatasetTurns(Sampler[list[int]]):
    """Batches of several datasets' rows, each batch from one dataset, in ``strategy``'s order.

    Each dataset is length-grouped on its own (``LengthGroupedSampler``, seeded per dataset). Proportional
    turns draw the order of all batches of the epoch at random, so every row is used and a dataset twice
    as large comes twice as often; round-robin turns take one batch of each dataset in turn and stop when
    the first dataset has none left, as sentence-transformers' samplers do. The order depends only on
    the seed and the epoch.
    """

    def __init__(self, lengths: Sequence[Sequence[int]], *, batch_size: int, seed: int, group_batches: int = 64,
                 strategy: str = MultiDatasetBatchSamplers.PROPORTIONAL, drop_last: bool = False) -> None:
        if str(strategy) not in tuple(MultiDatasetBatchSamplers):
            raise ConfigError(f"multi_dataset_batch_sampler must be one of "
                              f"{', '.join(map(str, MultiDatasetBatchSamplers))}, not {strategy!r}")
        self.strategy = str(strategy)
        self.seed = seed
        self.epoch = 0
        self.offsets = [0, *accumulate(len(rows) for rows in lengths)][:-1]
        self.samplers = [LengthGroupedSampler(rows, batch_size=batch_size, seed=seed + number,
                                              group_batches=group_batches, drop_last=drop_last)
                         for number, rows in enumerate(lengths)]

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        for sampler in self.samplers:
            sampler.set_epoch(epoch)

    def __len__(self) -> int:
        counts = [len(sampler) for sampler in self.samplers]
        if self.strategy == MultiDatasetBatchSamplers.ROUND_ROBIN:
            return min(counts) * len(counts)
        return sum(counts)

    def __iter__(self) -> Iterator[list[int]]:
        batches = [iter(sampler) for sampler in self.samplers]
        if self.strategy == MultiDatasetBatchSamplers.ROUND_ROBIN:
            turns: Sequence[int] = [number for _ in range(min(map(len, self.samplers)))
                                    for number in range(len(self.samplers))]
        else:
            turns = np.repeat(np.arange(len(self.samplers)), [len(sampler) for sampler in self.samplers])
            turns = np.random.default_rng([self.seed, self.epoch, len(self.samplers)]).permutation(turns).tolist()
        for number in turns:
            offset = self.offsets[number]
            yield [offset + index for index in next(batches[number])]


class TaskCollator:
    """Collates a batch of global row numbers with its dataset's collator; the targets' first column is
    the dataset's number (the rest: its gold scores, or its text ids for an in-batch-negative loss)."""

    def __init__(self, datasets: Sequence[TrainingPairs]) -> None:
        self.datasets = list(datasets)
        self.offsets = [0, *accumulate(len(data.pairs) for data in self.datasets)]

    def __call__(self, indices: list[int]) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        number = int(np.searchsorted(self.offsets, indices[0], side="right")) - 1
        start, end = self.offsets[number], self.offsets[number + 1]
        if not all(start <= index < end for index in indices):
            raise ValueError("a multi-dataset batch mixes rows of several datasets")
        features, targets = self.datasets[number].collator([index - start for index in indices])
        rows = len(indices)
        # float64 holds every label and text id exactly (ids stay far below 2**53)
        tagged = torch.cat([torch.full((rows, 1), float(number), dtype=torch.float64),
                            targets.reshape(rows, -1).to(torch.float64)], dim=1)
        return features, tagged

    def loss(self, embeddings: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """The batch's loss under its own dataset's loss function."""
        data = self.datasets[int(targets[0, 0])]
        rest = targets[:, 1:]
        return data.loss(embeddings, rest.long() if data.in_batch else rest[:, 0].float())


def train_tasks(model: SentenceTransformer, *, tasks: Sequence[TrainingTask], config: TrainConfig,
                strategy: str = MultiDatasetBatchSamplers.PROPORTIONAL, evaluator: Evaluator | None = None,
                quiet: bool | None = None, keep_best: bool = True,
                on_record: Callable[[dict[str, Any]], None] | None = None,
                checkpoints: Checkpoints | None = None) -> TrainResult:
    """Fine-tunes ``model`` in place on several datasets, each batch under its own dataset's loss.

    Steps, the schedule, evaluation and the best checkpoint are the run's, as with one dataset
    (``sentsim.training.loop.train``). Batches over ``config.max_forward_tokens`` are cut into chunks
    only when all the datasets have rows of the same width and losses of the same kind.
    """
    from accelerate.utils import set_seed

    if not tasks:
        raise ConfigError("multi-dataset training needs at least one dataset")
    set_seed(config.seed)
    prepared = []
    for task in tasks:
        if len(task.texts) not in (2, 3):
            raise ConfigError(f"dataset {task.name!r}: needs 2 text columns, or 3 with hard negatives; "
                              f"it has {len(task.texts)}")
        try:
            prepared.append(TrainingPairs.prepare(
                model, sentences_a=task.texts[0], sentences_b=task.texts[1], labels=task.labels,
                negatives=task.texts[2] if len(task.texts) > 2 else None, loss=task.loss, config=config))
        except ConfigError as error:
            raise ConfigError(f"dataset {task.name!r}: {error}") from error
    empty = [task.name for task, data in zip(tasks, prepared, strict=True) if len(data.pairs) == 0]
    if empty:
        raise ConfigError(f"dataset {', '.join(map(repr, empty))} has no rows")
    collator = TaskCollator(prepared)
    lengths = [data.pairs.lengths for data in prepared]

    def batch_sampler(processes: int) -> DatasetTurns:
        # several processes shard the batches in turn: short ones anywhere but last would unbalance them
        return DatasetTurns(lengths, batch_size=config.batch_size, seed=config.seed,
                            group_batches=config.group_batches, strategy=strategy, drop_last=processes > 1)

    return run_loop(model, lengths=[length for rows in lengths for length in rows], collate=collator,
                    forward=sentence_embeddings, loss=collator.loss, config=config, evaluator=evaluator,
                    on_record=on_record, quiet=quiet, keep_best=keep_best, chunking=_chunking(prepared, config),
                    batch_sampler=batch_sampler, checkpoints=checkpoints)


def _chunking(prepared: Sequence[TrainingPairs], config: TrainConfig) -> Chunking | None:
    """One chunking for every batch: possible when rows are alike (texts per row, per-pair loss or not)."""
    kinds = {(data.sides, is_per_pair(data.loss_fn), getattr(data.loss_fn, "mini_batch_size", None))
             for data in prepared}
    if len(kinds) == 1:
        return Chunking.resolve(config.max_forward_tokens, loss=prepared[0].loss_fn, sides=prepared[0].sides,
                                pad_to_multiple_of=config.pad_to_multiple_of, accumulation=config.accumulation_steps)
    if config.accumulation_steps > 1:
        raise ConfigError("gradient accumulation needs datasets whose rows hold the same number of texts and whose "
                          "losses are all per-pair or all ranking losses (with the same mini_batch_size)")
    if config.max_forward_tokens not in (None, "auto"):
        raise ConfigError("max_forward_tokens needs datasets whose rows hold the same number of texts and whose "
                          "losses are all per-pair or all ranking losses; leave it 'auto' to run batches whole")
    return None
