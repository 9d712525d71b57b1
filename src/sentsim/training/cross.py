"""Training a cross-encoder on scored pairs, with the same loop, schedule and checkpointing as the bi-encoder."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import nn

from sentsim.data import PairDataset
from sentsim.encoders.cross_encoder import CrossEncoder
from sentsim.evaluation.evaluate import genre_spearman
from sentsim.evaluation.metrics import pearson, spearman
from sentsim.training.config import TrainConfig
from sentsim.training.loop import TrainResult, run_loop

PRIMARY_METRIC = "spearman"


class CrossEncoderEvaluator:
    """Spearman/Pearson ×100 of a cross-encoder's scores on a dev set, per genre as well."""

    def __init__(self, dataset: PairDataset, *, batch_size: int = 64, dtype: str = "auto") -> None:
        self.dataset = dataset
        self.batch_size = batch_size
        self.dtype = dtype

    def __call__(self, model: CrossEncoder) -> dict[str, float]:
        predicted = model.score_pairs(self.dataset.sentences1, self.dataset.sentences2, batch_size=self.batch_size,
                                  dtype=self.dtype)
        gold = self.dataset.scores
        metrics = {"spearman": spearman(gold, predicted), "pearson": pearson(gold, predicted)}
        metrics.update({f"spearman_{genre}": value for genre, value in genre_spearman(self.dataset, predicted).items()})
        return metrics


def train_cross_encoder(
    model: CrossEncoder,
    *,
    dataset: PairDataset,
    config: TrainConfig,
    dev: PairDataset | None = None,
    on_record: Callable[[dict[str, Any]], None] | None = None,
    quiet: bool | None = None,
) -> TrainResult:
    """Fine-tunes ``model`` in place with binary cross-entropy on the 0–1 gold scores.

    Each pair is shown in one randomly chosen order (fixed by the seed), so the network learns
    that similarity does not depend on which sentence comes first without doubling the epoch.
    With ``dev``, the best dev checkpoint (Spearman) is kept.
    """
    from accelerate.utils import set_seed

    set_seed(config.seed)
    swap = np.random.default_rng(config.seed).random(len(dataset)) < 0.5
    first = [b if flip else a for a, b, flip in zip(dataset.sentences1, dataset.sentences2, swap, strict=True)]
    second = [a if flip else b for a, b, flip in zip(dataset.sentences1, dataset.sentences2, swap, strict=True)]
    rows = model.tokenize_pairs(first, second)
    labels = torch.as_tensor(np.asarray(dataset.scores, dtype=np.float32))

    def collate(indices: list[int]) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        features = model.collate([rows[index] for index in indices], pad_to_multiple_of=config.pad_to_multiple_of)
        return features, labels[indices]

    def forward(network: nn.Module, features: dict[str, torch.Tensor]) -> torch.Tensor:
        return network(features)

    bce = nn.BCEWithLogitsLoss()

    def loss(logits: torch.Tensor, batch_labels: torch.Tensor) -> torch.Tensor:
        return bce(logits.float(), batch_labels.float())

    evaluator = CrossEncoderEvaluator(dev, batch_size=config.eval_batch_size, dtype=config.dtype) \
        if dev is not None else None
    return run_loop(model, lengths=[len(ids) for ids, _ in rows], collate=collate, forward=forward, loss=loss,
                    config=config, evaluator=evaluator, on_record=on_record, quiet=quiet,
                    primary_metric=PRIMARY_METRIC)
