"""A whole ``sentsim train`` run: data → base scores → training → test → calibration → run folder."""

from __future__ import annotations

import json
import os
import platform
import resource
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from sentsim.data import PairDataset, genre_name, load_pairs
from sentsim.encoders.bi_encoder import SentenceTransformer
from sentsim.evaluation.evaluate import EmbeddingSimilarityEvaluator, EvaluationResult, evaluate_pairs
from sentsim.evaluation.metrics import mean_absolute_error
from sentsim.inference.calibration import IsotonicCalibration
from sentsim.persistence.atomic import atomic_directory, atomic_write_json
from sentsim.persistence.hub import DEFAULT_MODEL
from sentsim.reporting import render_model_card, write_report
from sentsim.training.config import TrainConfig
from sentsim.training.loop import TrainResult, train
from sentsim.training.soup import average_into

#: Bootstrap resamples for the confidence intervals of the final dev/test figures.
BOOTSTRAP_RESAMPLES = 1000


@dataclass(kw_only=True)
class RunOptions:
    """Everything ``sentsim train`` needs besides the hyper-parameters."""

    output: Path
    base_model: str = DEFAULT_MODEL
    #: A pooling mode here means "from scratch": keep only the base transformer, add new pooling.
    pooling: str | None = None
    normalize: bool = False
    data: str | None = None
    dev_data: str | None = None
    test_data: str | None = None
    skip_bad_rows: bool = False
    #: False keeps the test split unread, for tuning runs that must choose without looking at test.
    evaluate_test: bool = True
    max_seq_length: int | None = None
    quiet: bool | None = None
    command: str = ""
    data_options: dict[str, Any] = field(default_factory=dict)


@dataclass
class RunSummary:
    summary: dict[str, Any]
    output: Path


def load_splits(options: RunOptions) -> tuple[PairDataset, PairDataset, PairDataset | None]:
    """train/dev/test from an STSb folder, or from separate pair files (test is optional there)."""
    common = {"skip_bad_rows": options.skip_bad_rows, **options.data_options}
    data_is_file = options.data is not None and Path(options.data).is_file()
    train_set = load_pairs(options.data, split="train", **common)
    if options.dev_data is not None:
        dev_set = load_pairs(options.dev_data, split="dev", **common)
    elif data_is_file:
        from sentsim.errors import ConfigError

        raise ConfigError("training on a pair file needs --dev-data FILE to pick the best checkpoint")
    else:
        dev_set = load_pairs(options.data, split="dev", **common)
    if not options.evaluate_test:
        test_set = None
    elif options.test_data is not None:
        test_set = load_pairs(options.test_data, split="test", **common)
    else:
        test_set = None if data_is_file else load_pairs(options.data, split="test", **common)
    dev_set.require_scorable()
    if test_set is not None:
        test_set.require_scorable()
    return train_set, dev_set, test_set


def build_model(options: RunOptions) -> SentenceTransformer:
    if options.pooling is not None:
        model = SentenceTransformer.from_transformer(options.base_model, pooling=options.pooling,
                                                     normalize=options.normalize)
    else:
        model = SentenceTransformer(options.base_model)
    if options.max_seq_length is not None:
        model.max_seq_length = options.max_seq_length
    return model


def run_training(options: RunOptions, config: TrainConfig) -> RunSummary:
    """Trains, evaluates and writes the run folder atomically (a crash leaves no half-written run)."""
    started = time.perf_counter()
    train_set, dev_set, test_set = load_splits(options)
    model = build_model(options)
    evaluate = _evaluator(config)
    base_test = evaluate(model, test_set, bootstrap=0) if test_set is not None else None

    with atomic_directory(options.output) as folder:
        atomic_write_json(folder / "config.json", _config_record(options, config, train_set, dev_set, test_set))
        with open(folder / "metrics.jsonl", "w", encoding="utf-8") as log:
            def on_record(entry: dict[str, Any]) -> None:
                log.write(json.dumps(entry) + "\n")
                log.flush()

            result = _train_model(model, options, config, train_set=train_set, dev_set=dev_set,
                                  on_record=on_record)
        base_dev = next((record for record in result.records if record["kind"] == "eval" and record["step"] == 0),
                        None)
        dev = evaluate(model, dev_set, bootstrap=BOOTSTRAP_RESAMPLES)
        model.calibration = IsotonicCalibration.fit(dev.cosines, dev.gold * 5.0, source=f"{dev_set.source} (dev)")
        test = evaluate(model, test_set, bootstrap=BOOTSTRAP_RESAMPLES) if test_set is not None else None

        summary = _summary(options, config, result, dev, test, base_dev, base_test, model, started)
        if test is not None and test_set is not None:
            _write_predictions(folder / "predictions.jsonl", test_set, test, model.calibration)
        model.save(folder / "model", model_card=_model_card(options, config, summary, model, train_set))
        summary["timing"]["wall_seconds"] = round(time.perf_counter() - started, 2)
        atomic_write_json(folder / "summary.json", summary)
        write_report(folder)
    return RunSummary(summary=summary, output=options.output)


def _train_model(model: SentenceTransformer, options: RunOptions, config: TrainConfig, *, train_set: PairDataset,
                 dev_set: PairDataset, on_record) -> TrainResult:
    """One run, or with ``config.average = N`` N runs (seeds seed … seed+N−1) averaged into ``model``.

    Each run keeps its best dev checkpoint before averaging. Their records go to one log with
    steps counted on across runs and a ``run`` number, then one record for the averaged model.
    """
    evaluator = EmbeddingSimilarityEvaluator(dataset=dev_set, batch_size=config.eval_batch_size,
                                             precision=config.precision)

    def fit(member: SentenceTransformer, seed: int, log) -> TrainResult:
        return train(member, sentences_a=train_set.sentences1, sentences_b=train_set.sentences2,
                     labels=train_set.scores, config=replace(config, seed=seed, average=1), on_record=log,
                     quiet=options.quiet, evaluator=evaluator)

    if config.average == 1:
        return fit(model, config.seed, on_record)
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


def run_seeds(options: RunOptions, config: TrainConfig, *, seeds: list[int]) -> dict[str, Any]:
    """The same recipe once per seed (``OUTPUT/seed-<n>/``), then mean ± sample std in ``seeds.json``.

    One run's score moves by a few tenths with the seed alone; comparing recipes needs the spread.
    """
    runs = []
    for seed in seeds:
        output = options.output / f"seed-{seed}"
        summary = run_training(replace(options, output=output), replace(config, seed=seed)).summary
        runs.append({"seed": seed, "output": str(output),
                     "dev_spearman_cosine": summary["dev"]["spearman_cosine"],
                     "test_spearman_cosine": summary.get("test", {}).get("spearman_cosine"),
                     "best_step": summary["best_step"], "train_seconds": summary["timing"]["train_seconds"],
                     "wall_seconds": summary["timing"]["wall_seconds"]})
    mean: dict[str, float] = {}
    std: dict[str, float] = {}
    for key in ("dev_spearman_cosine", "test_spearman_cosine", "train_seconds", "wall_seconds"):
        values = [run[key] for run in runs if run[key] is not None]
        if values:
            mean[key] = round(float(np.mean(values)), 4)
            std[key] = round(float(np.std(values, ddof=1)) if len(values) > 1 else 0.0, 4)
    result = {"recipe": config.to_dict(), "base_model": options.base_model, "seeds": seeds, "runs": runs,
              "mean": mean, "std": std, "command": options.command}
    atomic_write_json(options.output / "seeds.json", result)
    return result


def _evaluator(config: TrainConfig):
    def evaluate(model: SentenceTransformer, dataset: PairDataset, *, bootstrap: int) -> EvaluationResult:
        return evaluate_pairs(model, dataset, batch_size=config.eval_batch_size, precision=config.precision,
                              bootstrap=bootstrap, seed=config.seed)

    return evaluate


def _summary(options: RunOptions, config: TrainConfig, result, dev: EvaluationResult,
             test: EvaluationResult | None, base_dev: dict | None, base_test: EvaluationResult | None,
             model: SentenceTransformer, started: float) -> dict[str, Any]:
    metric_names = list(dev.metrics)
    summary: dict[str, Any] = {
        "base_model": options.base_model,
        "recipe": "from scratch (" + options.pooling + " pooling)" if options.pooling else "continue training",
        "loss": config.loss,
        "best_step": result.best_step,
        "steps": result.steps,
        "stopped_early": result.stopped_early,
        "dev": _rounded(dev.metrics),
        "dev_ci": {name: list(interval) for name, interval in dev.confidence_intervals.items()},
        "base": {"dev": _rounded({name: base_dev[name] for name in metric_names}) if base_dev else {}},
        "timing": {
            "train_seconds": round(result.train_seconds, 2),
            "pairs_per_second": round(result.pairs_per_second, 2),
            "peak_rss_mb": round(peak_rss_mb(), 1),
        },
        "command": options.command,
    }
    if test is not None:
        summary["test"] = _rounded(test.metrics)
        summary["test_ci"] = {name: list(interval) for name, interval in test.confidence_intervals.items()}
        gold_0_to_5 = test.gold * 5.0
        summary["calibration"] = {
            "fitted_on": "dev",
            "mae_cosine_x5": round(mean_absolute_error(np.clip(test.cosines, 0, 1) * 5.0, gold_0_to_5), 4),
            "mae_calibrated": round(mean_absolute_error(model.calibration.predict(test.cosines), gold_0_to_5), 4),
        }
    per_genre: dict[str, dict[str, dict[str, float]]] = {}
    if base_dev and dev.per_genre:
        per_genre["dev"] = {genre: {"base": round(base_dev.get(f"spearman_cosine_{genre}", float("nan")), 4),
                                    "trained": round(value, 4)} for genre, value in dev.per_genre.items()}
    if base_test is not None:
        summary["base"]["test"] = _rounded(base_test.metrics)
        if test is not None and test.per_genre:
            per_genre["test"] = {genre: {"base": round(base_test.per_genre.get(genre, float("nan")), 4),
                                         "trained": round(value, 4)} for genre, value in test.per_genre.items()}
    if per_genre:
        summary["per_genre"] = per_genre
    return summary


def _write_predictions(path: Path, dataset: PairDataset, result: EvaluationResult,
                       calibration: IsotonicCalibration | None) -> None:
    calibrated = calibration.predict(result.cosines) if calibration is not None else None
    with open(path, "w", encoding="utf-8") as handle:
        for index, pair in enumerate(dataset):
            handle.write(json.dumps({
                "sentence1": pair.sentence1, "sentence2": pair.sentence2, "genre": genre_name(pair.genre),
                "gold": round(pair.score * 5.0, 4), "cosine": round(float(result.cosines[index]), 6),
                "calibrated": None if calibrated is None else round(float(calibrated[index]), 4),
            }, ensure_ascii=False) + "\n")


def _model_card(options: RunOptions, config: TrainConfig, summary: dict[str, Any], model: SentenceTransformer,
                train_set: PairDataset) -> str:
    pooling = model.pooling
    metrics = {split: summary[split] for split in ("dev", "test") if split in summary}
    intervals = {split: summary[f"{split}_ci"] for split in ("dev", "test") if summary.get(f"{split}_ci")}
    return render_model_card(
        model_name=options.output.name, base_model=options.base_model, loss=config.loss,
        data=f"{train_set.source} ({len(train_set)} pairs)", hyperparameters=config.to_dict(), metrics=metrics,
        confidence_intervals=intervals or None, command=options.command, dimensions=model.embedding_dimension,
        max_seq_length=model.max_seq_length, pooling="+".join(pooling.modes) if pooling else "none",
    )


def _config_record(options: RunOptions, config: TrainConfig, *datasets: PairDataset | None) -> dict[str, Any]:
    import accelerate
    import torch
    import transformers

    from sentsim import __version__

    return {
        "base_model": options.base_model, "pooling": options.pooling, "normalize": options.normalize,
        "data": options.data, "dev_data": options.dev_data, "test_data": options.test_data,
        "max_seq_length": options.max_seq_length, "skip_bad_rows": options.skip_bad_rows,
        **config.to_dict(),
        "pairs": {name: len(dataset) for name, dataset in zip(("train", "dev", "test"), datasets, strict=True)
                  if dataset is not None},
        "command": options.command,
        "versions": {"sentsim": __version__, "torch": torch.__version__, "transformers": transformers.__version__,
                     "accelerate": accelerate.__version__, "python": platform.python_version()},
        "machine": {"platform": platform.platform(), "processor": _cpu_name(), "cpu_count": os.cpu_count(),
                    "torch_threads": torch.get_num_threads()},
    }


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _rounded(metrics: dict[str, float]) -> dict[str, float]:
    return {name: round(value, 4) for name, value in metrics.items()}


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far (Linux reports KiB, macOS bytes)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024
