"""The token-batch stage: pairs → cached token ids → length-grouped, padded batches."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import Sampler

from sentsim.errors import ConfigError


@dataclass(frozen=True)
class TokenizedPairs:
    """Token ids of both sides of every pair, made once per dataset instead of once per step."""

    ids_a: list[list[int]]
    ids_b: list[list[int]]
    labels: torch.Tensor

    def __len__(self) -> int:
        return len(self.ids_a)

    @property
    def lengths(self) -> list[int]:
        """A pair's cost is set by its longer side: both sides are padded together."""
        return [max(len(a), len(b)) for a, b in zip(self.ids_a, self.ids_b, strict=True)]


def tokenize_pairs(tokenize, sentences_a: Sequence[str], sentences_b: Sequence[str],
                   labels: Sequence[float]) -> TokenizedPairs:
    """Tokenises each distinct sentence once; STSb train repeats many of them."""
    unique = list(dict.fromkeys([*sentences_a, *sentences_b]))
    ids = dict(zip(unique, tokenize(unique), strict=True))
    return TokenizedPairs(
        ids_a=[ids[text] for text in sentences_a],
        ids_b=[ids[text] for text in sentences_b],
        labels=torch.as_tensor(np.asarray(labels, dtype=np.float32)),
    )


class LengthGroupedSampler(Sampler[list[int]]):
    """Yields batches of indices whose lengths are alike, so batches carry little padding.

    Each epoch: shuffle all indices, cut them into chunks of ``batch_size * group_batches``, sort
    each chunk by length, cut it into batches, then shuffle the batch order. Every example comes
    exactly once per epoch; the chunks keep batches random enough for SGD, while sorting inside
    them removes most padding (STSb train: 2.2× tokens when shuffled, ~1.1× when grouped).
    The order depends only on ``seed`` and the epoch, so runs repeat exactly.
    """

    def __init__(self, lengths: Sequence[int], *, batch_size: int, seed: int = 0, group_batches: int = 64,
                 drop_last: bool = False) -> None:
        if batch_size < 1:
            raise ConfigError(f"batch_size must be positive, got {batch_size}")
        if group_batches < 1:
            raise ConfigError(f"group_batches must be positive, got {group_batches}")
        self.lengths = np.asarray(lengths)
        self.batch_size = batch_size
        self.seed = seed
        self.group_batches = group_batches
        self.drop_last = drop_last
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        full, rest = divmod(len(self.lengths), self.batch_size)
        return full if self.drop_last or rest == 0 else full + 1

    def __iter__(self) -> Iterator[list[int]]:
        generator = np.random.default_rng([self.seed, self.epoch])
        order = generator.permutation(len(self.lengths))
        chunk_size = self.batch_size * self.group_batches
        batches: list[np.ndarray] = []
        for start in range(0, len(order), chunk_size):
            chunk = order[start : start + chunk_size]
            chunk = chunk[np.argsort(self.lengths[chunk], kind="stable")]
            batches.extend(chunk[i : i + self.batch_size] for i in range(0, len(chunk), self.batch_size))
        # Chunks are whole batches long, so only the very last batch can be short.
        if self.drop_last and batches and len(batches[-1]) < self.batch_size:
            batches.pop()
        for index in generator.permutation(len(batches)):
            yield batches[index].tolist()


class PairCollator:
    """Builds one padded batch holding side A then side B, for a single forward pass.

    One pass over 2·B sequences runs the encoder's big matmuls on twice the rows, which is faster
    on CPU than two passes of B; length grouping keeps the shared padding small.
    """

    def __init__(self, pairs: TokenizedPairs, collate, *, pad_to_multiple_of: int | None = 8) -> None:
        self.pairs = pairs
        self.collate = collate
        self.pad_to_multiple_of = pad_to_multiple_of

    def __call__(self, indices: list[int]) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        ids = [self.pairs.ids_a[i] for i in indices] + [self.pairs.ids_b[i] for i in indices]
        features = self.collate(ids, pad_to_multiple_of=self.pad_to_multiple_of)
        return features, self.pairs.labels[indices]
