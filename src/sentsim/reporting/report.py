"""The run report: turns a finished run folder into plots/, report.md and a self-contained report.html.

The report answers, in order, the questions one has after training: did it beat the base model and
by how much (with uncertainty), did training behave, where does the model go wrong, and what did it
cost. Each section below is one function from the run's files to blocks (``reporting.render``).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from sentsim.persistence.atomic import atomic_write_text
from sentsim.reporting.plots import plot_learning_curve, plot_scatter
from sentsim.reporting.render import Block, Code, Heading, Image, Table, render_html, render_markdown
from sentsim.reporting.run_files import Prediction, read_calibration_curve, read_jsonl, read_predictions
from sentsim.reporting.summary import RunFolderError, RunSummary, finite, read_json

__all__ = ["RunFolderError", "write_report"]

TOP_ERRORS = 20
_METRIC_LABELS = {"spearman_cosine": "Spearman", "pearson_cosine": "Pearson"}
_PLOTS_FOLDER = "plots"
# atomic_directory builds a folder as ".{name}.tmp-{hex}"; the report is often written inside one.
_BUILDING_FOLDER = re.compile(r"^\.(?P<name>.+)\.tmp-[0-9a-f]+$")


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _format(value: float | None, digits: int = 2, *, signed: bool = False) -> str:
    if value is None:
        return "–"
    return f"{value:+.{digits}f}" if signed else f"{value:.{digits}f}"


def _format_interval(value: Any) -> str:
    if isinstance(value, list | tuple) and len(value) == 2:
        low, high = finite(value[0]), finite(value[1])
        if low is not None and high is not None:
            return f"[{low:.2f}, {high:.2f}]"
    return ""


def _format_duration(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, second = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {second:02d} s"
    hours, minute = divmod(minutes, 60)
    return f"{hours} h {minute:02d} min"


def _predicted_score(prediction: Prediction, *, use_calibrated: bool) -> float:
    if use_calibrated and prediction.calibrated is not None:
        return prediction.calibrated
    # Clipped because the gold scale stops at 0 and 5: a cosine of -0.2 predicts "unrelated" (0),
    # and counting -1 as the prediction would overstate its error.
    return min(5.0, max(0.0, 5.0 * prediction.cosine))


def _headline(summary: RunSummary) -> list[Block]:
    rows: list[list[str]] = []
    sentence = ""
    for key, label in _METRIC_LABELS.items():
        for split in ("dev", "test"):
            trained = finite((summary.split(split) or {}).get(key))
            if trained is None:
                continue
            before = finite(summary.base.split(split).get(key))
            change = trained - before if before is not None else None
            interval = _format_interval(summary.intervals(split).get(key))
            rows.append([label, split, _format(before), _format(trained), _format(change, signed=True), interval])
            if key == "spearman_cosine" and (split == "test" or not sentence):
                sentence = f"{split.capitalize()} Spearman ×100: {trained:.2f}"
                sentence += f" {interval}" if interval else ""
                if before is not None and change is not None:
                    sentence += f", base model {before:.2f} ({change:+.2f})."
                else:
                    sentence += "."
    if not rows:
        return []
    return [
        Heading("Headline"),
        sentence,
        Table(["Metric (cosine, ×100)", "Split", "Base model", "Trained", "Change", "CI"], rows, {2, 3, 4}),
    ]


def _calibration_blocks(summary: RunSummary) -> list[Block]:
    calibration = summary.calibration
    if calibration is None:
        return []
    before, after = finite(calibration.mae_cosine_x5), finite(calibration.mae_calibrated)
    if before is None and after is None:
        return []
    fitted_on = calibration.fitted_on
    note = "Mean absolute error against the gold score (0–5) of the uncalibrated 5 × cosine and of the "
    note += f"calibrated score (calibration fitted on {fitted_on})." if fitted_on else "calibrated score."
    return [
        Heading("Calibration", 3),
        note,
        Table(
            ["Prediction", "MAE"],
            [["5 × cosine", _format(before, 3)], ["calibrated", _format(after, 3)]],
            {1},
        ),
    ]


def _dimension_blocks(summary: RunSummary) -> list[Block]:
    """Test Spearman with fewer leading dimensions kept, for a Matryoshka-trained run."""
    if not summary.test_by_dimension:
        return []
    return [
        Heading("Shortened embeddings", 3),
        "Test Spearman(cosine, ×100) with only the first dimensions of each embedding kept "
        "(the run trained its loss on these slices too).",
        Table(["Dimensions kept", "Spearman"],
              [[dim, _format(finite(value))] for dim, value in summary.test_by_dimension.items()], {0, 1}),
    ]


def _per_genre(summary: RunSummary, predictions: list[Prediction]) -> list[Block]:
    counts: dict[str, int] = {}
    for prediction in predictions:
        counts[prediction.genre] = counts.get(prediction.genre, 0) + 1
    rows = []
    for split, genres in (summary.per_genre or {}).items():
        for genre, scores in genres.items():
            base, trained = finite(scores.base), finite(scores.trained)
            change = trained - base if base is not None and trained is not None else None
            pairs = str(counts[genre]) if split == "test" and genre in counts else "–"
            rows.append([split, genre, pairs, _format(base), _format(trained), _format(change, signed=True)])
    if not rows:
        return []
    return [
        Heading("Spearman by genre"),
        "Spearman ×100 of cosine similarity within each genre of the STS benchmark.",
        Table(["Split", "Genre", "Pairs", "Base model", "Trained", "Change"], rows, {2, 3, 4, 5}),
    ]


def _largest_errors(predictions: list[Prediction]) -> list[Block]:
    if not predictions:
        return []
    # One mapping for the whole table: mixing calibrated and 5 × cosine rows would rank apples
    # against oranges, so calibrated scores are used only when every pair has one.
    use_calibrated = all(prediction.calibrated is not None for prediction in predictions)
    scored = [(_predicted_score(p, use_calibrated=use_calibrated) - p.gold, p) for p in predictions]
    scored.sort(key=lambda item: -abs(item[0]))
    source = "calibrated score" if use_calibrated else "5 × cosine, clipped to 0–5"
    rows = [
        [
            str(rank),
            p.genre,
            p.sentence1,
            p.sentence2,
            _format(p.gold),
            _format(p.cosine, 3),
            _format(p.gold + error),
            _format(error, signed=True),
        ]
        for rank, (error, p) in enumerate(scored[:TOP_ERRORS], start=1)
    ]
    return [
        Heading(f"The {len(rows)} test pairs with the largest error"),
        f"Predicted score: {source}. Error = predicted − gold.",
        Table(
            ["#", "Genre", "Sentence 1", "Sentence 2", "Gold", "Cosine", "Predicted", "Error"],
            rows,
            {0, 4, 5, 6, 7},
            {2, 3},
        ),
    ]


def _cell(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def _setup(summary: RunSummary, config: dict[str, Any]) -> list[Block]:
    blocks: list[Block] = []
    settings = summary.settings()
    # Nested parts (versions, machine, pair counts) get their own small tables; the command has its
    # own section.
    settings |= {key: value for key, value in config.items() if not isinstance(value, dict) and key != "command"}
    rows = [[key, _cell(value)] for key, value in settings.items() if value is not None]
    if rows:
        blocks += [Heading("Training setup"), Table(["Option", "Value"], rows)]
    for name, values in config.items():
        if isinstance(values, dict) and values:
            table_rows = [[str(key), _cell(value)] for key, value in values.items()]
            blocks += [Heading(name.replace("_", " ").capitalize(), 3), Table(["", ""], table_rows)]
    return blocks


def _timing(summary: RunSummary) -> list[Block]:
    timing = summary.timing
    if timing is None:
        return []
    speed, memory = finite(timing.pairs_per_second), finite(timing.peak_rss_mb)
    rows = [
        ["Wall time", _format_duration(finite(timing.wall_seconds))],
        ["Training time", _format_duration(finite(timing.train_seconds))],
        ["Training speed", f"{speed:,.1f} pairs/s" if speed is not None else "–"],
        ["Peak memory (RSS)", f"{memory:,.0f} MB" if memory is not None else "–"],
    ]
    return [Heading("Timing"), Table(["", ""], rows, {1})]


def _build(run_dir: Path) -> tuple[str, list[Block]]:
    summary = RunSummary.load(run_dir)
    config_path = run_dir / "config.json"
    config = _mapping(read_json(config_path)) if config_path.is_file() else {}
    metrics_path = run_dir / "metrics.jsonl"
    records = read_jsonl(metrics_path) if metrics_path.is_file() else []
    predictions_path = run_dir / "predictions.jsonl"
    predictions = read_predictions(predictions_path) if predictions_path.is_file() else []
    calibration_path = run_dir / "model" / "calibration.json"
    curve = read_calibration_curve(calibration_path) if calibration_path.is_file() else None

    folder_name = run_dir.resolve().name
    building = _BUILDING_FOLDER.match(folder_name)
    title = f"sentsim run report: {building.group('name') if building else folder_name}"
    intro = ", ".join(
        f"{label} {value}"
        for label, value in (("base model", summary.base_model), ("loss", summary.loss))
        if value
    )
    blocks: list[Block] = [Heading(title, 1)]
    if intro:
        blocks.append(intro[0].upper() + intro[1:] + ".")
    blocks += [f"Warning: {text}" for text in summary.warnings]
    blocks += _headline(summary)

    plots = run_dir / _PLOTS_FOLDER
    if records:
        path = plot_learning_curve(records, plots / "learning_curve.png", best_step=summary.best_step)
        blocks += [
            Heading("Learning curve"),
            "Training loss (left axis) and dev Spearman ×100 (right axis) per optimizer step; "
            "step 0 is the base model.",
            Image(f"{_PLOTS_FOLDER}/{path.name}", "Learning curve", path.read_bytes()),
        ]
    if predictions:
        path = plot_scatter(
            [p.gold for p in predictions],
            [p.cosine for p in predictions],
            plots / "scatter.png",
            calibration_xy=curve,
        )
        blocks += [
            Heading("Test predictions"),
            "Each dot is one test pair. The dashed line is the naive mapping 5 × cosine"
            + (", the solid line the fitted calibration curve." if curve else "."),
            Image(f"{_PLOTS_FOLDER}/{path.name}", "Gold score against cosine similarity", path.read_bytes()),
        ]
    blocks += _calibration_blocks(summary)
    blocks += _dimension_blocks(summary)
    blocks += _per_genre(summary, predictions)
    blocks += _largest_errors(predictions)
    blocks += _timing(summary)
    blocks += _setup(summary, config)
    if summary.command:
        blocks += [Heading("Command"), "Reproduce this run with:", Code(summary.command)]
    return title, blocks


def write_report(run_dir: str | Path) -> tuple[Path, Path]:
    """Read a run folder and write ``plots/*.png``, ``report.html`` and ``report.md`` into it.

    Every file is written atomically, so a report interrupted half way leaves the previous report
    intact. Parts of the run folder that are optional (metrics, predictions, calibration, config,
    confidence intervals, timing) are left out of the report when absent.

    Args:
        run_dir: the folder ``sentsim train`` wrote.

    Returns:
        ``(report_html, report_md)`` paths.

    Raises:
        RunFolderError: the folder or its ``summary.json`` is missing, or a file in it is malformed.
    """
    folder = Path(run_dir)
    title, blocks = _build(folder)
    markdown_path = atomic_write_text(folder / "report.md", render_markdown(blocks))
    html_path = atomic_write_text(folder / "report.html", render_html(title, blocks))
    return html_path, markdown_path
