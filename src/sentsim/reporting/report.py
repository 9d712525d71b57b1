"""The run report: turns a finished run folder into plots/, report.md and a self-contained report.html.

The report answers, in order, the questions one has after training: did it beat the base model and
by how much (with uncertainty), did training behave, where does the model go wrong, and what did it
cost. The page is built once as a list of blocks and rendered twice, so the Markdown and the HTML
versions always say the same thing. report.html embeds its images and style, so it can be mailed
or archived alone and opens without network access.
"""

from __future__ import annotations

import base64
import html
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sentsim.errors import SentsimError
from sentsim.persistence.atomic import atomic_write_text
from sentsim.reporting.model_card import code_block, escape_markdown
from sentsim.reporting.plots import plot_learning_curve, plot_scatter

__all__ = ["RunFolderError", "write_report"]

TOP_ERRORS = 20
_METRIC_LABELS = {"spearman_cosine": "Spearman", "pearson_cosine": "Pearson"}
_PLOTS_FOLDER = "plots"
# Facts about the run that summary.json holds and config.json does not, shown with the options.
_SUMMARY_SETTINGS = ("base_model", "recipe", "loss", "best_step", "steps", "stopped_early")
# atomic_directory builds a folder as ".{name}.tmp-{hex}"; the report is often written inside one.
_BUILDING_FOLDER = re.compile(r"^\.(?P<name>.+)\.tmp-[0-9a-f]+$")


class RunFolderError(SentsimError):
    """A run folder that lacks a file the report needs, or holds one that cannot be read."""

    def __init__(self, path: str | Path, reason: str, *, line: int | None = None) -> None:
        self.path = str(path)
        self.reason = reason
        self.line = line
        where = f"{self.path}, line {line}" if line is not None else self.path
        super().__init__(f"{where}: {reason}")


# --- reading the run folder -------------------------------------------------------------------


def _read_json(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise RunFolderError(path, f"cannot be read ({error.strerror or error})") from error
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise RunFolderError(path, f"is not valid JSON ({error.msg})", line=error.lineno) from error


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    records: list[dict[str, Any]] = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as error:
        raise RunFolderError(path, f"cannot be read ({error.strerror or error})") from error
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise RunFolderError(path, f"is not valid JSON ({error.msg})", line=number) from error
        if not isinstance(record, dict):
            raise RunFolderError(path, "expected one JSON object per line", line=number)
        records.append(record)
    return records


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


@dataclass(frozen=True)
class _Prediction:
    sentence1: str
    sentence2: str
    genre: str
    gold: float
    cosine: float
    calibrated: float | None


def _read_predictions(path: Path) -> list[_Prediction]:
    predictions = []
    for number, record in enumerate(_read_jsonl(path), start=1):
        gold, cosine = _number(record.get("gold")), _number(record.get("cosine"))
        if gold is None or cosine is None:
            raise RunFolderError(path, "record needs numeric 'gold' and 'cosine'", line=number)
        predictions.append(
            _Prediction(
                sentence1=str(record.get("sentence1", "")),
                sentence2=str(record.get("sentence2", "")),
                genre=str(record.get("genre") or ""),
                gold=gold,
                cosine=cosine,
                calibrated=_number(record.get("calibrated")),
            )
        )
    return predictions


def _read_calibration_curve(path: Path) -> tuple[list[float], list[float]] | None:
    calibration = _read_json(path)
    if not isinstance(calibration, dict) or calibration.get("kind") != "isotonic":
        return None  # another kind of calibrator: nothing we know how to draw
    x, y = calibration.get("x"), calibration.get("y")
    if not isinstance(x, list) or not isinstance(y, list) or len(x) != len(y):
        raise RunFolderError(path, "isotonic calibration needs lists 'x' and 'y' of equal length")
    knots_x = [_number(value) for value in x]
    knots_y = [_number(value) for value in y]
    if None in knots_x or None in knots_y:
        raise RunFolderError(path, "calibration knots must be finite numbers")
    return [float(value or 0.0) for value in knots_x], [float(value or 0.0) for value in knots_y]


# --- the document: built once, rendered as Markdown and as HTML ---------------------------------


@dataclass
class _Table:
    header: list[str]
    rows: list[list[str]]
    numeric: set[int] = field(default_factory=set)  # column indexes to right-align
    wide: set[int] = field(default_factory=set)  # column indexes holding long text


@dataclass(frozen=True)
class _Image:
    relative_path: str
    alt: str
    png: bytes


@dataclass(frozen=True)
class _Code:
    text: str


@dataclass(frozen=True)
class _Heading:
    text: str
    level: int = 2


_Block = _Heading | str | _Table | _Image | _Code


def _format(value: float | None, digits: int = 2, *, signed: bool = False) -> str:
    if value is None:
        return "–"
    return f"{value:+.{digits}f}" if signed else f"{value:.{digits}f}"


def _format_interval(value: Any) -> str:
    if isinstance(value, list | tuple) and len(value) == 2:
        low, high = _number(value[0]), _number(value[1])
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


def _predicted_score(prediction: _Prediction, *, use_calibrated: bool) -> float:
    if use_calibrated and prediction.calibrated is not None:
        return prediction.calibrated
    # Clipped because the gold scale stops at 0 and 5: a cosine of -0.2 predicts "unrelated" (0),
    # and counting -1 as the prediction would overstate its error.
    return min(5.0, max(0.0, 5.0 * prediction.cosine))


def _headline(summary: dict[str, Any]) -> list[_Block]:
    base = _mapping(summary.get("base"))
    rows: list[list[str]] = []
    sentence = ""
    for key, label in _METRIC_LABELS.items():
        for split in ("dev", "test"):
            trained = _number(_mapping(summary.get(split)).get(key))
            if trained is None:
                continue
            before = _number(_mapping(base.get(split)).get(key))
            change = trained - before if before is not None else None
            interval = _format_interval(_mapping(summary.get(f"{split}_ci")).get(key))
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
        _Heading("Headline"),
        sentence,
        _Table(["Metric (cosine, ×100)", "Split", "Base model", "Trained", "Change", "CI"], rows, {2, 3, 4}),
    ]


def _calibration_blocks(summary: dict[str, Any]) -> list[_Block]:
    calibration = _mapping(summary.get("calibration"))
    before, after = _number(calibration.get("mae_cosine_x5")), _number(calibration.get("mae_calibrated"))
    if before is None and after is None:
        return []
    fitted_on = calibration.get("fitted_on")
    note = "Mean absolute error against the gold score (0–5) of the uncalibrated 5 × cosine and of the "
    note += f"calibrated score (calibration fitted on {fitted_on})." if fitted_on else "calibrated score."
    return [
        _Heading("Calibration", 3),
        note,
        _Table(
            ["Prediction", "MAE"],
            [["5 × cosine", _format(before, 3)], ["calibrated", _format(after, 3)]],
            {1},
        ),
    ]


def _per_genre(summary: dict[str, Any], predictions: list[_Prediction]) -> list[_Block]:
    counts: dict[str, int] = {}
    for prediction in predictions:
        counts[prediction.genre] = counts.get(prediction.genre, 0) + 1
    rows = []
    for split, genres in _mapping(summary.get("per_genre")).items():
        for genre, scores in _mapping(genres).items():
            base, trained = _number(_mapping(scores).get("base")), _number(_mapping(scores).get("trained"))
            change = trained - base if base is not None and trained is not None else None
            pairs = str(counts[genre]) if split == "test" and genre in counts else "–"
            rows.append([split, genre, pairs, _format(base), _format(trained), _format(change, signed=True)])
    if not rows:
        return []
    return [
        _Heading("Spearman by genre"),
        "Spearman ×100 of cosine similarity within each genre of the STS benchmark.",
        _Table(["Split", "Genre", "Pairs", "Base model", "Trained", "Change"], rows, {2, 3, 4, 5}),
    ]


def _largest_errors(predictions: list[_Prediction]) -> list[_Block]:
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
        _Heading(f"The {len(rows)} test pairs with the largest error"),
        f"Predicted score: {source}. Error = predicted − gold.",
        _Table(
            ["#", "Genre", "Sentence 1", "Sentence 2", "Gold", "Cosine", "Predicted", "Error"],
            rows,
            {0, 4, 5, 6, 7},
            {2, 3},
        ),
    ]


def _cell(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def _setup(summary: dict[str, Any], config: dict[str, Any]) -> list[_Block]:
    blocks: list[_Block] = []
    settings = {key: summary.get(key) for key in _SUMMARY_SETTINGS}
    # Nested parts (versions, machine, pair counts) get their own small tables; the command has its
    # own section.
    settings |= {key: value for key, value in config.items() if not isinstance(value, dict) and key != "command"}
    rows = [[key, _cell(value)] for key, value in settings.items() if value is not None]
    if rows:
        blocks += [_Heading("Training setup"), _Table(["Option", "Value"], rows)]
    for name, values in config.items():
        if isinstance(values, dict) and values:
            table_rows = [[str(key), _cell(value)] for key, value in values.items()]
            blocks += [_Heading(name.replace("_", " ").capitalize(), 3), _Table(["", ""], table_rows)]
    return blocks


def _timing(summary: dict[str, Any]) -> list[_Block]:
    timing = _mapping(summary.get("timing"))
    if not timing:
        return []
    speed, memory = _number(timing.get("pairs_per_second")), _number(timing.get("peak_rss_mb"))
    rows = [
        ["Wall time", _format_duration(_number(timing.get("wall_seconds")))],
        ["Training time", _format_duration(_number(timing.get("train_seconds")))],
        ["Training speed", f"{speed:,.1f} pairs/s" if speed is not None else "–"],
        ["Peak memory (RSS)", f"{memory:,.0f} MB" if memory is not None else "–"],
    ]
    return [_Heading("Timing"), _Table(["", ""], rows, {1})]


def _build(run_dir: Path) -> tuple[str, list[_Block]]:
    summary_path = run_dir / "summary.json"
    if not run_dir.is_dir():
        raise RunFolderError(run_dir, "run folder does not exist")
    if not summary_path.is_file():
        raise RunFolderError(summary_path, "missing: the run folder has no summary.json (did training finish?)")
    summary = _read_json(summary_path)
    if not isinstance(summary, dict):
        raise RunFolderError(summary_path, "expected a JSON object")
    config_path = run_dir / "config.json"
    config = _mapping(_read_json(config_path)) if config_path.is_file() else {}
    metrics_path = run_dir / "metrics.jsonl"
    records = _read_jsonl(metrics_path) if metrics_path.is_file() else []
    predictions_path = run_dir / "predictions.jsonl"
    predictions = _read_predictions(predictions_path) if predictions_path.is_file() else []
    calibration_path = run_dir / "model" / "calibration.json"
    curve = _read_calibration_curve(calibration_path) if calibration_path.is_file() else None

    folder_name = run_dir.resolve().name
    building = _BUILDING_FOLDER.match(folder_name)
    title = f"sentsim run report: {building.group('name') if building else folder_name}"
    intro = ", ".join(
        f"{label} {value}"
        for label, value in (("base model", summary.get("base_model")), ("loss", summary.get("loss")))
        if value
    )
    blocks: list[_Block] = [_Heading(title, 1)]
    if intro:
        blocks.append(intro[0].upper() + intro[1:] + ".")
    blocks += _headline(summary)

    plots = run_dir / _PLOTS_FOLDER
    if records:
        best_step = summary.get("best_step")
        path = plot_learning_curve(
            records, plots / "learning_curve.png", best_step=best_step if isinstance(best_step, int) else None
        )
        blocks += [
            _Heading("Learning curve"),
            "Training loss (left axis) and dev Spearman ×100 (right axis) per optimizer step; "
            "step 0 is the base model.",
            _Image(f"{_PLOTS_FOLDER}/{path.name}", "Learning curve", path.read_bytes()),
        ]
    if predictions:
        path = plot_scatter(
            [p.gold for p in predictions],
            [p.cosine for p in predictions],
            plots / "scatter.png",
            calibration_xy=curve,
        )
        blocks += [
            _Heading("Test predictions"),
            "Each dot is one test pair. The dashed line is the naive mapping 5 × cosine"
            + (", the solid line the fitted calibration curve." if curve else "."),
            _Image(f"{_PLOTS_FOLDER}/{path.name}", "Gold score against cosine similarity", path.read_bytes()),
        ]
    blocks += _calibration_blocks(summary)
    blocks += _per_genre(summary, predictions)
    blocks += _largest_errors(predictions)
    blocks += _timing(summary)
    blocks += _setup(summary, config)
    command = summary.get("command")
    if isinstance(command, str) and command:
        blocks += [_Heading("Command"), "Reproduce this run with:", _Code(command)]
    return title, blocks


def _render_markdown(blocks: list[_Block]) -> str:
    parts: list[str] = []
    for block in blocks:
        if isinstance(block, _Heading):
            parts.append(f"{'#' * block.level} {escape_markdown(block.text)}")
        elif isinstance(block, str):
            parts.append(escape_markdown(block))
        elif isinstance(block, _Image):
            parts.append(f"![{escape_markdown(block.alt)}]({block.relative_path})")
        elif isinstance(block, _Code):
            parts.append(code_block(block.text, "bash"))
        else:
            align = ["---:" if index in block.numeric else "---" for index in range(len(block.header))]
            lines = [
                "| " + " | ".join(escape_markdown(cell) for cell in block.header) + " |",
                "| " + " | ".join(align) + " |",
            ]
            lines += ["| " + " | ".join(escape_markdown(cell) for cell in row) + " |" for row in block.rows]
            parts.append("\n".join(lines))
    return "\n\n".join(parts) + "\n"


_CSS = """
body { font: 15px/1.5 system-ui, -apple-system, "Segoe UI", sans-serif; color: #1b1b1b;
       max-width: 1100px; margin: 2em auto; padding: 0 1em; }
h1 { font-size: 1.6em; border-bottom: 2px solid #ddd; padding-bottom: .3em; }
h2 { font-size: 1.25em; margin-top: 1.8em; }
h3 { font-size: 1.05em; margin-top: 1.2em; }
table { border-collapse: collapse; margin: .6em 0; }
th, td { border: 1px solid #d8d8d8; padding: .3em .6em; vertical-align: top; text-align: left; }
th { background: #f3f3f3; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
td.text { min-width: 14em; overflow-wrap: anywhere; }
img { max-width: 100%; height: auto; border: 1px solid #eee; }
pre { background: #f6f6f6; padding: .8em; overflow-x: auto; white-space: pre-wrap; overflow-wrap: anywhere; }
""".strip()


def _render_html(title: str, blocks: list[_Block]) -> str:
    escape = html.escape
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{escape(title)}</title>",
        f"<style>\n{_CSS}\n</style>",
        "</head>",
        "<body>",
    ]
    for block in blocks:
        if isinstance(block, _Heading):
            parts.append(f"<h{block.level}>{escape(block.text)}</h{block.level}>")
        elif isinstance(block, str):
            parts.append(f"<p>{escape(block)}</p>")
        elif isinstance(block, _Image):
            data = base64.b64encode(block.png).decode("ascii")
            parts.append(f'<p><img src="data:image/png;base64,{data}" alt="{escape(block.alt)}"></p>')
        elif isinstance(block, _Code):
            parts.append(f"<pre><code>{escape(block.text)}</code></pre>")
        else:
            parts.append("<table>")
            if any(block.header):
                parts.append("<thead><tr>" + "".join(f"<th>{escape(c)}</th>" for c in block.header) + "</tr></thead>")
            parts.append("<tbody>")
            for row in block.rows:
                cells = []
                for index, cell in enumerate(row):
                    css = "num" if index in block.numeric else "text" if index in block.wide else ""
                    attribute = f' class="{css}"' if css else ""
                    cells.append(f"<td{attribute}>{escape(cell)}</td>")
                parts.append("<tr>" + "".join(cells) + "</tr>")
            parts.append("</tbody></table>")
    parts += ["</body>", "</html>", ""]
    return "\n".join(parts)


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
    markdown_path = atomic_write_text(folder / "report.md", _render_markdown(blocks))
    html_path = atomic_write_text(folder / "report.html", _render_html(title, blocks))
    return html_path, markdown_path
