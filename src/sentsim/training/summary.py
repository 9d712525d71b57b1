"""The run summary of a finished training run, built from its results (the record itself: ``reporting.summary``)."""

from __future__ import annotations

import resource
import sys

import numpy as np

from sentsim.evaluation.evaluate import EvaluationResult
from sentsim.evaluation.metrics import mean_absolute_error
from sentsim.inference.calibration import IsotonicCalibration
from sentsim.reporting.summary import BaseScores, CalibrationErrors, GenreChange, RunSummary, Timing
from sentsim.training.config import TrainConfig
from sentsim.training.loop import TrainResult
from sentsim.training.options import RunOptions


def summarize(options: RunOptions, config: TrainConfig, result: TrainResult, *, dev: EvaluationResult,
              test: EvaluationResult | None, base_dev: dict | None, base_test: EvaluationResult | None,
              calibration: IsotonicCalibration, test_by_dimension: dict[int, float] | None = None) -> RunSummary:
    """Scores before and after training (with intervals), calibration errors, per-genre changes, timing."""
    metric_names = list(dev.metrics)
    summary = RunSummary(
        base_model=options.base_model,
        recipe="from scratch (" + options.pooling + " pooling)" if options.pooling else "continue training",
        loss=config.loss, best_step=result.best_step, steps=result.steps, stopped_early=result.stopped_early,
        dev=_rounded(dev.metrics), dev_ci=_intervals(dev),
        base=BaseScores(dev=_rounded({name: base_dev[name] for name in metric_names}) if base_dev else {}),
        timing=Timing(train_seconds=round(result.train_seconds, 2), pairs_per_second=round(result.pairs_per_second, 2),
                      peak_rss_mb=round(peak_rss_mb(), 1)),
        command=options.command,
    )
    if test is not None:
        summary.test, summary.test_ci = _rounded(test.metrics), _intervals(test)
        summary.calibration = _calibration_errors(test, calibration)
        if test_by_dimension:
            summary.test_by_dimension = {str(dim): round(value, 4) for dim, value in test_by_dimension.items()}
    per_genre: dict[str, dict[str, GenreChange]] = {}
    if base_dev and dev.per_genre:
        per_genre["dev"] = {genre: GenreChange(base=round(base_dev.get(f"spearman_cosine_{genre}", float("nan")), 4),
                                               trained=round(value, 4)) for genre, value in dev.per_genre.items()}
    if base_test is not None:
        summary.base.test = _rounded(base_test.metrics)
        if test is not None and test.per_genre:
            per_genre["test"] = {genre: GenreChange(base=round(base_test.per_genre.get(genre, float("nan")), 4),
                                                    trained=round(value, 4)) for genre, value in test.per_genre.items()}
    summary.per_genre = per_genre or None
    return summary


def _calibration_errors(test: EvaluationResult, calibration: IsotonicCalibration) -> CalibrationErrors:
    """Test MAE (0–5) of the naive 5 × cosine and of the calibration fitted on dev."""
    gold_0_to_5 = test.gold * 5.0
    return CalibrationErrors(
        fitted_on="dev",
        mae_cosine_x5=round(mean_absolute_error(np.clip(test.cosines, 0, 1) * 5.0, gold_0_to_5), 4),
        mae_calibrated=round(mean_absolute_error(calibration.predict(test.cosines), gold_0_to_5), 4),
    )


def _intervals(result: EvaluationResult) -> dict[str, list[float]]:
    return {name: list(interval) for name, interval in result.confidence_intervals.items()}


def _rounded(metrics: dict[str, float]) -> dict[str, float]:
    return {name: round(value, 4) for name, value in metrics.items()}


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far (Linux reports KiB, macOS bytes)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024
