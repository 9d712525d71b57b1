"""The files of a run folder besides the model: config.json, metrics.jsonl, predictions.jsonl, the model card."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sentsim.data import PairDataset, genre_name
from sentsim.encoders.bi_encoder import SentenceTransformer
from sentsim.environment import library_versions, machine_details
from sentsim.evaluation.evaluate import EvaluationResult
from sentsim.inference.calibration import IsotonicCalibration, calibrated_scores
from sentsim.reporting import render_model_card
from sentsim.reporting.summary import RunSummary
from sentsim.training.config import TrainConfig
from sentsim.training.options import RunOptions


def config_record(options: RunOptions, config: TrainConfig, *datasets: PairDataset | None) -> dict[str, Any]:
    """config.json: every option and hyper-parameter, the pair counts, versions and machine."""
    return {
        "base_model": options.base_model, "pooling": options.pooling, "normalize": options.normalize,
        "data": options.data, "dev_data": options.dev_data, "test_data": options.test_data,
        "max_seq_length": options.max_seq_length, "skip_bad_rows": options.skip_bad_rows,
        **config.to_dict(),
        "pairs": {name: len(dataset) for name, dataset in zip(("train", "dev", "test"), datasets, strict=True)
                  if dataset is not None},
        "command": options.command,
        "versions": library_versions(),
        "machine": machine_details(torch_threads=True),
    }


@contextmanager
def metrics_log(path: Path) -> Iterator[Callable[[dict[str, Any]], None]]:
    """metrics.jsonl, one record per line, flushed at once so a long run can be watched while it trains."""
    with open(path, "w", encoding="utf-8") as log:
        def on_record(entry: dict[str, Any]) -> None:
            log.write(json.dumps(entry) + "\n")
            log.flush()

        yield on_record


def write_predictions(path: Path, dataset: PairDataset, result: EvaluationResult,
                      calibration: IsotonicCalibration | None) -> None:
    """predictions.jsonl: each test pair with its gold score, cosine and calibrated score."""
    calibrated = calibrated_scores(result.cosines, calibration)
    with open(path, "w", encoding="utf-8") as handle:
        for index, pair in enumerate(dataset):
            handle.write(json.dumps({
                "sentence1": pair.sentence1, "sentence2": pair.sentence2, "genre": genre_name(pair.genre),
                "gold": round(pair.score * 5.0, 4), "cosine": round(float(result.cosines[index]), 6),
                "calibrated": None if calibrated is None else round(float(calibrated[index]), 4),
            }, ensure_ascii=False) + "\n")


def model_card(options: RunOptions, config: TrainConfig, summary: RunSummary, model: SentenceTransformer,
               train_set: PairDataset) -> str:
    pooling = model.pooling
    metrics = {split: summary.split(split) for split in ("dev", "test") if summary.split(split) is not None}
    intervals = {split: summary.intervals(split) for split in ("dev", "test") if summary.intervals(split)}
    return render_model_card(
        model_name=options.output.name, base_model=options.base_model, loss=config.loss,
        data=f"{train_set.source} ({len(train_set)} pairs)", hyperparameters=config.to_dict(), metrics=metrics,
        confidence_intervals=intervals or None, command=options.command, dimensions=model.embedding_dimension,
        max_seq_length=model.max_seq_length, pooling="+".join(pooling.modes) if pooling else "none",
        base_metrics={split: summary.base.split(split) for split in ("dev", "test") if summary.base.split(split)},
        per_genre={split: {genre: change.to_dict() for genre, change in genres.items()}
                   for split, genres in (summary.per_genre or {}).items()},
        calibrated=model.calibration is not None,
    )
