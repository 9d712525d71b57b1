"""The report's PNG figures: the learning curve and the gold-vs-cosine scatter.

Figures are built on :class:`matplotlib.figure.Figure` with the Agg canvas, never through
``pyplot``: pyplot keeps global figure state and may pick an interactive backend, which leaks memory
in a long-lived process (the HTTP server, a notebook) and fails on machines without a display.
"""

from __future__ import annotations

import io
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from sentsim.persistence.atomic import atomic_write_bytes

__all__ = ["plot_learning_curve", "plot_scatter"]

# Small enough to embed several in a self-contained HTML report, sharp enough to read.
_DPI = 100
_SIZE_INCHES = (8.0, 4.8)
_LOSS_COLOR = "#1f77b4"
_DEV_COLOR = "#d62728"


def _save(figure: Figure, path: str | os.PathLike[str]) -> Path:
    FigureCanvasAgg(figure)
    buffer = io.BytesIO()
    # Dropping the timestamp metadata keeps the bytes identical when nothing changed.
    figure.savefig(buffer, format="png", dpi=_DPI, metadata={"Software": None})
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    return atomic_write_bytes(target, buffer.getvalue())


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def plot_learning_curve(
    records: Iterable[Mapping[str, Any]],
    path: str | os.PathLike[str],
    *,
    best_step: int | None = None,
) -> Path:
    """Draw training loss and dev Spearman against the optimizer step and save it as a PNG.

    Loss (left axis) and dev Spearman (right axis) share the step axis so one glance shows whether
    dev quality stopped improving while the loss still fell. Records that are not ``kind == "train"``
    with a ``loss`` or ``kind == "eval"`` on ``split == "dev"`` with a ``spearman_cosine`` are
    ignored, as are non-finite values (a diverged step must not hide the rest of the curve).

    Args:
        records: the parsed lines of ``metrics.jsonl``.
        path: where to write the PNG; parent folders are created.
        best_step: if given, marked with a vertical line (the checkpoint that was kept).

    Returns:
        ``path`` as a :class:`~pathlib.Path`.
    """
    train_points, dev_points = _curve_points(records)
    figure = Figure(figsize=_SIZE_INCHES, layout="constrained")
    loss_axis = figure.add_subplot()
    dev_axis = loss_axis.twinx()
    loss_axis.set_title("Learning curve: training loss and dev Spearman")
    loss_axis.set_xlabel("optimizer step")
    loss_axis.set_ylabel("training loss", color=_LOSS_COLOR)
    dev_axis.set_ylabel("dev Spearman (cosine) ×100", color=_DEV_COLOR)
    loss_axis.grid(True, alpha=0.3)

    handles = []
    if train_points:
        steps, losses = zip(*train_points, strict=True)
        (line,) = loss_axis.plot(steps, losses, color=_LOSS_COLOR, linewidth=1.2, label="training loss")
        handles.append(line)
    if dev_points:
        steps, scores = zip(*dev_points, strict=True)
        (line,) = dev_axis.plot(
            steps, scores, color=_DEV_COLOR, marker="o", markersize=4, linewidth=1.5, label="dev Spearman"
        )
        handles.append(line)
    if best_step is not None:
        handles.append(
            loss_axis.axvline(best_step, color="grey", linestyle=":", linewidth=1.2, label=f"best step ({best_step})")
        )
    if handles:
        loss_axis.legend(handles=handles, loc="center right", fontsize="small")
    else:
        loss_axis.text(0.5, 0.5, "no training or dev records", ha="center", va="center", transform=loss_axis.transAxes)
    return _save(figure, path)


def _curve_points(records: Iterable[Mapping[str, Any]]) -> tuple[list[tuple[float, float]], list[tuple[float, float]]]:
    """(step, training loss) and (step, dev Spearman) points, by step; other or non-finite records left out."""
    train_points: list[tuple[float, float]] = []
    dev_points: list[tuple[float, float]] = []
    for record in records:
        step = record.get("step")
        if not _finite(step):
            continue
        if record.get("kind") == "train" and _finite(record.get("loss")):
            train_points.append((step, record["loss"]))
        elif (
            record.get("kind") == "eval"
            and record.get("split", "dev") == "dev"
            and _finite(record.get("spearman_cosine"))
        ):
            dev_points.append((step, record["spearman_cosine"]))
    return sorted(train_points), sorted(dev_points)


def plot_scatter(
    gold: Sequence[float],
    cosine: Sequence[float],
    path: str | os.PathLike[str],
    *,
    calibration_xy: tuple[Sequence[float], Sequence[float]] | None = None,
    title: str = "Test set: gold score vs cosine similarity",
) -> Path:
    """Scatter gold scores (y, 0–5) against cosine similarity (x) and save it as a PNG.

    The dashed ``5 × cosine`` line is the mapping one gets without calibration; when
    ``calibration_xy`` (the knots of the fitted cosine → score curve) is given, that curve is drawn
    too, so the reader sees where calibration moves predictions and by how much.

    Args:
        gold: gold similarity scores, 0–5.
        cosine: cosine similarities of the same pairs, in the same order.
        path: where to write the PNG; parent folders are created.
        calibration_xy: ``(x, y)`` knots of the calibration curve, x in cosine units, y in 0–5.
        title: figure title.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.

    Raises:
        ValueError: ``gold`` and ``cosine`` differ in length.
    """
    if len(gold) != len(cosine):
        raise ValueError(f"gold has {len(gold)} values but cosine has {len(cosine)}")

    knots_x: list[float] = []
    knots_y: list[float] = []
    if calibration_xy is not None:
        knots_x, knots_y = [float(x) for x in calibration_xy[0]], [float(y) for y in calibration_xy[1]]
        if len(knots_x) != len(knots_y):
            raise ValueError(f"calibration has {len(knots_x)} x knots but {len(knots_y)} y knots")
    everything = [0.0, 1.0, *cosine, *knots_x]
    x_min, x_max = min(everything), max(everything)

    figure = Figure(figsize=_SIZE_INCHES, layout="constrained")
    axis = figure.add_subplot()
    axis.set_title(f"{title} (n = {len(gold)})")
    axis.set_xlabel("cosine similarity")
    axis.set_ylabel("gold score (0–5)")
    axis.grid(True, alpha=0.3)
    axis.scatter(cosine, gold, s=8, alpha=0.45, color=_LOSS_COLOR, linewidths=0, label="test pair")
    _draw_score_maps(axis, x_min, x_max, knots_x, knots_y)
    axis.set_xlim(x_min - 0.02, x_max + 0.02)
    axis.set_ylim(-0.2, 5.2)
    axis.legend(loc="upper left", fontsize="small")
    return _save(figure, path)


def _draw_score_maps(axis: Any, x_min: float, x_max: float, knots_x: list[float], knots_y: list[float]) -> None:
    """The ``5 × cosine`` line and, given knots, the calibration curve, across ``[x_min, x_max]``."""
    # The uncalibrated prediction, clipped to the score range because no gold score is below 0.
    naive_x = [x_min, 0.0, x_max] if x_min < 0.0 else [x_min, x_max]
    axis.plot(
        naive_x,
        [min(5.0, max(0.0, 5.0 * x)) for x in naive_x],
        color="grey",
        linestyle="--",
        linewidth=1.2,
        zorder=3,  # dashed on top, so it stays visible where the calibration curve follows it
        label="5 × cosine (uncalibrated)",
    )
    if knots_x:
        # Isotonic predictions are clamped to the end knots outside the fitted range.
        curve_x = [x_min, *knots_x, x_max]
        curve_y = [knots_y[0], *knots_y, knots_y[-1]]
        axis.plot(curve_x, curve_y, color=_DEV_COLOR, linewidth=2.0, label="calibration curve")
