"""Reading a run folder's files for the report: metrics and predictions (JSON lines), calibration knots."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sentsim.reporting.summary import RunFolderError, finite, read_json

__all__ = ["Prediction", "read_calibration_curve", "read_jsonl", "read_predictions"]


def read_jsonl(path: Path) -> list[dict[str, Any]]:
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


@dataclass(frozen=True)
class Prediction:
    sentence1: str
    sentence2: str
    genre: str
    gold: float
    cosine: float
    calibrated: float | None


def read_predictions(path: Path) -> list[Prediction]:
    predictions = []
    for number, record in enumerate(read_jsonl(path), start=1):
        gold, cosine = finite(record.get("gold")), finite(record.get("cosine"))
        if gold is None or cosine is None:
            raise RunFolderError(path, "record needs numeric 'gold' and 'cosine'", line=number)
        predictions.append(
            Prediction(
                sentence1=str(record.get("sentence1", "")),
                sentence2=str(record.get("sentence2", "")),
                genre=str(record.get("genre") or ""),
                gold=gold,
                cosine=cosine,
                calibrated=finite(record.get("calibrated")),
            )
        )
    return predictions


def read_calibration_curve(path: Path) -> tuple[list[float], list[float]] | None:
    calibration = read_json(path)
    if not isinstance(calibration, dict) or calibration.get("kind") != "isotonic":
        return None  # another kind of calibrator: nothing we know how to draw
    x, y = calibration.get("x"), calibration.get("y")
    if not isinstance(x, list) or not isinstance(y, list) or len(x) != len(y):
        raise RunFolderError(path, "isotonic calibration needs lists 'x' and 'y' of equal length")
    knots_x = [finite(value) for value in x]
    knots_y = [finite(value) for value in y]
    if None in knots_x or None in knots_y:
        raise RunFolderError(path, "calibration knots must be finite numbers")
    return [float(value or 0.0) for value in knots_x], [float(value or 0.0) for value in knots_y]
