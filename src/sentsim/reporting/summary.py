"""The run summary (``summary.json``): one typed record, and the one place that knows its keys.

Training writes it, the report and the command line read it. It lives here, below ``training``,
because the report reads it and the report must not import training. ``from_dict`` is tolerant:
a folder written by an older sentsim, or a hand-made one, may lack any part, and a part of the
wrong type is treated as missing, so the report can leave it out instead of failing.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sentsim.errors import SentsimError

__all__ = ["SUMMARY_FILE", "BaseScores", "CalibrationErrors", "GenreChange", "RunFolderError", "RunSummary",
           "Timing", "read_json"]

SUMMARY_FILE = "summary.json"

#: metric name → value (×100), e.g. ``{"spearman_cosine": 84.2}``.
Metrics = dict[str, float]
#: metric name → ``[low, high]`` of its bootstrap confidence interval.
Intervals = dict[str, list[float]]


class RunFolderError(SentsimError):
    """A run folder that lacks a file the report needs, or holds one that cannot be read."""

    def __init__(self, path: str | Path, reason: str, *, line: int | None = None) -> None:
        self.path = str(path)
        self.reason = reason
        self.line = line
        where = f"{self.path}, line {line}" if line is not None else self.path
        super().__init__(f"{where}: {reason}")


def read_json(path: Path) -> Any:
    """The JSON in ``path``; a missing or malformed file raises RunFolderError naming it (and the line)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise RunFolderError(path, f"cannot be read ({error.strerror or error})") from error
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise RunFolderError(path, f"is not valid JSON ({error.msg})", line=error.lineno) from error


# -- tolerant readers: a value of the wrong type counts as missing -------------------------------
def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if isinstance(value, float) else value


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _metrics(value: Any) -> Metrics:
    return {str(name): number for name, number in _mapping(value).items() if _number(number) is not None}


def _intervals(value: Any) -> Intervals:
    return {str(name): list(interval) for name, interval in _mapping(value).items()
            if isinstance(interval, list | tuple)}


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


@dataclass
class BaseScores:
    """The base model's metrics before training, per split (``test`` only when test was read)."""

    dev: Metrics = field(default_factory=dict)
    test: Metrics | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"dev": self.dev} if self.test is None else {"dev": self.dev, "test": self.test}

    @classmethod
    def from_dict(cls, data: Any) -> BaseScores:
        data = _mapping(data)
        return cls(dev=_metrics(data.get("dev")), test=_metrics(data["test"]) if "test" in data else None)

    def split(self, name: str) -> Metrics:
        return (self.test or {}) if name == "test" else self.dev if name == "dev" else {}


@dataclass
class Timing:
    """Seconds and memory: training alone (no evaluation), the whole run, and the peak RSS."""

    train_seconds: float | None = None
    pairs_per_second: float | None = None
    peak_rss_mb: float | None = None
    wall_seconds: float | None = None

    _KEYS = ("train_seconds", "pairs_per_second", "peak_rss_mb", "wall_seconds")

    def to_dict(self) -> dict[str, float]:
        return {key: getattr(self, key) for key in self._KEYS if getattr(self, key) is not None}

    @classmethod
    def from_dict(cls, data: Any) -> Timing:
        data = _mapping(data)
        return cls(**{key: _number(data.get(key)) for key in cls._KEYS})


@dataclass
class CalibrationErrors:
    """Test MAE on the 0–5 scale of 5 × cosine and of the calibrated score, and the split it was fitted on."""

    fitted_on: str | None = None
    mae_cosine_x5: float | None = None
    mae_calibrated: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"fitted_on": self.fitted_on, "mae_cosine_x5": self.mae_cosine_x5,
                "mae_calibrated": self.mae_calibrated}

    @classmethod
    def from_dict(cls, data: Any) -> CalibrationErrors:
        data = _mapping(data)
        return cls(fitted_on=_text(data.get("fitted_on")), mae_cosine_x5=_number(data.get("mae_cosine_x5")),
                   mae_calibrated=_number(data.get("mae_calibrated")))


@dataclass
class GenreChange:
    """Spearman ×100 within one genre, before and after training."""

    base: float | None
    trained: float | None

    def to_dict(self) -> dict[str, float | None]:
        return {"base": self.base, "trained": self.trained}

    @classmethod
    def from_dict(cls, data: Any) -> GenreChange:
        data = _mapping(data)
        return cls(base=_number(data.get("base")), trained=_number(data.get("trained")))


#: Facts of a run beside its scores, in the order the report lists them.
SETTINGS = ("base_model", "recipe", "loss", "best_step", "steps", "stopped_early")


@dataclass(kw_only=True)
class RunSummary:
    """What one ``sentsim train`` run achieved and cost; ``to_dict`` is exactly ``summary.json``."""

    base_model: str | None = None
    recipe: str | None = None
    loss: str | None = None
    best_step: int | None = None
    steps: int | None = None
    stopped_early: bool | None = None
    dev: Metrics = field(default_factory=dict)
    dev_ci: Intervals = field(default_factory=dict)
    base: BaseScores = field(default_factory=BaseScores)
    timing: Timing | None = None
    command: str | None = None
    #: The three test parts are there together, or not at all (``--no-test``, or no test file).
    test: Metrics | None = None
    test_ci: Intervals | None = None
    calibration: CalibrationErrors | None = None
    #: Test Spearman(cosine) with each number of leading dimensions kept ("384" → 86.6), for a run trained
    #: with ``matryoshka_dims``.
    test_by_dimension: dict[str, float] | None = None
    #: split → genre → change; only for data with genres (the STS benchmark).
    per_genre: dict[str, dict[str, GenreChange]] | None = None
    #: What the reader must know about this run (e.g. no evaluation beat the base model), one line each.
    warnings: list[str] = field(default_factory=list)

    # -- the file ---------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        summary: dict[str, Any] = {name: getattr(self, name) for name in SETTINGS}
        summary |= {"dev": self.dev, "dev_ci": self.dev_ci, "base": self.base.to_dict(),
                    "timing": (self.timing or Timing()).to_dict(), "command": self.command}
        if self.test is not None:
            summary["test"] = self.test
            summary["test_ci"] = self.test_ci or {}
            summary["calibration"] = (self.calibration or CalibrationErrors()).to_dict()
        if self.test_by_dimension:
            summary["test_by_dimension"] = dict(self.test_by_dimension)
        if self.per_genre:
            summary["per_genre"] = {split: {genre: change.to_dict() for genre, change in genres.items()}
                                    for split, genres in self.per_genre.items()}
        if self.warnings:
            summary["warnings"] = list(self.warnings)
        return summary

    @classmethod
    def from_dict(cls, data: Any) -> RunSummary:
        """Reads any version's summary: missing or mistyped parts become None (or empty)."""
        data = _mapping(data)
        best_step = data.get("best_step")
        steps = data.get("steps")
        per_genre = {str(split): {str(genre): GenreChange.from_dict(change)
                                  for genre, change in _mapping(genres).items()}
                     for split, genres in _mapping(data.get("per_genre")).items()}
        return cls(
            base_model=_text(data.get("base_model")), recipe=_text(data.get("recipe")), loss=_text(data.get("loss")),
            best_step=best_step if isinstance(best_step, int) and not isinstance(best_step, bool) else None,
            steps=steps if isinstance(steps, int) and not isinstance(steps, bool) else None,
            stopped_early=data["stopped_early"] if isinstance(data.get("stopped_early"), bool) else None,
            dev=_metrics(data.get("dev")), dev_ci=_intervals(data.get("dev_ci")),
            base=BaseScores.from_dict(data.get("base")),
            timing=Timing.from_dict(data["timing"]) if _mapping(data.get("timing")) else None,
            command=_text(data.get("command")),
            test=_metrics(data["test"]) if "test" in data else None,
            test_ci=_intervals(data["test_ci"]) if "test_ci" in data else None,
            calibration=CalibrationErrors.from_dict(data["calibration"]) if "calibration" in data else None,
            test_by_dimension=_metrics(data.get("test_by_dimension")) or None,
            per_genre=per_genre or None,
            warnings=[text for text in data.get("warnings") or [] if isinstance(text, str)]
            if isinstance(data.get("warnings"), list) else [],
        )

    @classmethod
    def load(cls, run_folder: str | Path) -> RunSummary:
        """The summary of a run folder.

        Raises:
            RunFolderError: the folder or its summary.json is missing, or the file is not a JSON object.
        """
        folder = Path(run_folder)
        path = folder / SUMMARY_FILE
        if not folder.is_dir():
            raise RunFolderError(folder, "run folder does not exist")
        if not path.is_file():
            raise RunFolderError(path, f"missing: the run folder has no {SUMMARY_FILE} (did training finish?)")
        data = read_json(path)
        if not isinstance(data, dict):
            raise RunFolderError(path, "expected a JSON object")
        return cls.from_dict(data)

    # -- views ------------------------------------------------------------------------------------
    def split(self, name: str) -> Metrics | None:
        """The trained model's metrics on ``dev`` or ``test`` (None when that split was not scored)."""
        return self.dev if name == "dev" else self.test if name == "test" else None

    def intervals(self, name: str) -> Intervals:
        return self.dev_ci if name == "dev" else (self.test_ci or {}) if name == "test" else {}

    def settings(self) -> dict[str, Any]:
        """The run's facts besides scores (base model, recipe, loss, steps …); None where unknown."""
        return {name: getattr(self, name) for name in SETTINGS}

    def figures(self, output: str | Path) -> dict[str, Any]:
        """The flat figures of the run (``dev_spearman_cosine``, ``test_…``, timing, calibration, output)."""
        figures: dict[str, Any] = {}
        for split in ("dev", "test"):
            for name, value in (self.split(split) or {}).items():
                figures[f"{split}_{name}"] = value
        figures.update({f"base_{split}_spearman_cosine": self.base.split(split)["spearman_cosine"]
                        for split in ("dev", "test") if self.base.split(split)})
        figures.update((self.timing or Timing()).to_dict())
        figures.update({"best_step": self.best_step, "output": str(output)})
        figures.update(self.calibration.to_dict() if self.calibration is not None else {})
        return figures


def finite(value: Any) -> float | None:
    """``value`` as a float when it is a finite number, else None (NaN from an empty genre, say)."""
    number = _number(value)
    return float(number) if number is not None and math.isfinite(number) else None
