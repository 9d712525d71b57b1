"""Monotone calibration from cosine similarity to the STS 0–5 gold scale, and its ``calibration.json`` file.

Cosines from a bi-encoder rank pairs well but are not on the gold scale (a trained model often puts
unrelated pairs at cosine 0.3, not 0), so a served score of ``5 × cosine`` misleads users. An isotonic
(monotone, otherwise free-form) fit on held-out pairs fixes the scale without changing the ranking, so
Spearman is untouched while the absolute error drops.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from sentsim.errors import ConfigError, SentsimError, SentsimWarning
from sentsim.persistence.atomic import atomic_write_text

__all__ = ["CALIBRATION_FILE", "CalibrationFileError", "IsotonicCalibration", "aligned_cosines", "calibrated_scores",
           "require_calibration"]

CALIBRATION_FILE = "calibration.json"
"""File name of the calibration inside a model folder."""

GOLD_MIN = 0.0
GOLD_MAX = 5.0


class CalibrationFileError(SentsimError):
    """A ``calibration.json`` (or its dictionary form) that cannot be read as a calibration.

    ``path`` is ``None`` when the problem was found in an in-memory dictionary (``from_dict``).
    """

    def __init__(self, path: str | Path | None, reason: str) -> None:
        self.path = None if path is None else str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}" if self.path is not None else f"calibration data: {reason}")


class IsotonicCalibration:
    """Monotone non-decreasing map from cosine to a 0–5 score, stored as interpolation knots.

    Between knots the score is interpolated linearly; below the first and above the last knot it stays
    flat, because extrapolating a fit beyond the cosines it saw would invent scores. Predictions are
    clipped to [0, 5].
    """

    def __init__(self, x: np.ndarray, y: np.ndarray, *, n_pairs: int, source: str | None = None) -> None:
        """Create a calibration from knots; most callers want :meth:`fit` or :meth:`load` instead.

        Args:
            x: strictly increasing cosine thresholds.
            y: non-decreasing scores at those thresholds, within [0, 5].
            n_pairs: number of pairs the knots were fitted on, kept so a reader can judge the fit.
            source: free-text description of the fitting data (e.g. ``"stsbenchmark dev"``).

        Raises:
            ValueError: if the knots are empty, differ in length, are not finite, or are not monotone.
        """
        x = np.asarray(x, dtype=np.float64).reshape(-1)
        y = np.asarray(y, dtype=np.float64).reshape(-1)
        if x.size == 0 or x.shape != y.shape:
            raise ValueError(f"knots need matching non-empty x and y, got {x.size} and {y.size} values")
        if not (np.isfinite(x).all() and np.isfinite(y).all()):
            raise ValueError("knots must be finite numbers")
        if np.any(np.diff(x) <= 0):
            raise ValueError("knot x values must be strictly increasing")
        if np.any(np.diff(y) < 0):
            raise ValueError("knot y values must be non-decreasing")
        if y[0] < GOLD_MIN or y[-1] > GOLD_MAX:
            raise ValueError(f"knot y values must lie in [{GOLD_MIN:g}, {GOLD_MAX:g}]")
        self.x = x
        self.y = y
        self.n_pairs = int(n_pairs)
        self.source = source

    def __repr__(self) -> str:
        return f"IsotonicCalibration(knots={self.x.size}, n_pairs={self.n_pairs}, source={self.source!r})"

    @classmethod
    def fit(
        cls, cosines: np.ndarray, gold_0_to_5: np.ndarray, *, source: str | None = None
    ) -> IsotonicCalibration:
        """Fit the increasing isotonic regression of gold scores on cosines.

        Pairs with the same cosine are first merged into their mean score (weighted by count): isotonic
        regression on sorted data would otherwise give tied cosines different scores depending on
        their input order. The fitted step function is then reduced to the first and last cosine of
        each constant block, which is all interpolation needs.

        Args:
            cosines: ``(pairs,)`` cosine similarities, ideally from held-out data.
            gold_0_to_5: ``(pairs,)`` gold scores on the original 0–5 STS scale (not the 0–1 training scale).
            source: description of the data, stored in the file for provenance.

        Raises:
            ValueError: for mismatched lengths, fewer than 2 pairs, or non-finite values.
        """
        from scipy.optimize import isotonic_regression  # only fitting needs scipy; loading does not

        cosines = np.asarray(cosines, dtype=np.float64).reshape(-1)
        gold = np.asarray(gold_0_to_5, dtype=np.float64).reshape(-1)
        if cosines.shape != gold.shape:
            raise ValueError(f"got {cosines.size} cosines for {gold.size} gold scores")
        if cosines.size < 2:
            raise ValueError(f"need at least 2 pairs to fit a calibration, got {cosines.size}")
        if not (np.isfinite(cosines).all() and np.isfinite(gold).all()):
            raise ValueError("cosines and gold scores must be finite")
        if gold.max() <= 1.0 and cosines.size >= 20:
            # The commonest mistake: passing the 0–1 training labels. The fit would then predict 0–1.
            warnings.warn(
                "all gold scores are ≤ 1; calibration expects the 0–5 STS scale, not normalised labels",
                SentsimWarning,
                stacklevel=2,
            )
        thresholds, inverse, counts = np.unique(cosines, return_inverse=True, return_counts=True)
        mean_gold = np.bincount(inverse, weights=gold) / counts
        result = isotonic_regression(mean_gold, weights=counts, increasing=True)
        fitted = np.clip(result.x, GOLD_MIN, GOLD_MAX)
        blocks = np.asarray(result.blocks)
        # Knot indices: the first and last threshold of every constant block (once if they coincide).
        knot_index = np.unique(np.concatenate([blocks[:-1], blocks[1:] - 1]))
        return cls(thresholds[knot_index], fitted[knot_index], n_pairs=cosines.size, source=source)

    def predict(self, cosines: np.ndarray) -> np.ndarray:
        """Calibrated 0–5 scores for the given cosines (same shape, float64)."""
        cosines = np.asarray(cosines, dtype=np.float64)
        return np.clip(np.interp(cosines, self.x, self.y), GOLD_MIN, GOLD_MAX)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form: ``kind``, knots ``x`` and ``y``, ``n_pairs`` and ``source``."""
        return {
            "kind": "isotonic",
            "x": self.x.tolist(),
            "y": self.y.tolist(),
            "n_pairs": self.n_pairs,
            "source": self.source,
        }

    @classmethod
    def from_dict(cls, data: Any) -> IsotonicCalibration:
        """Rebuild from :meth:`to_dict` output, checking every field.

        Raises:
            CalibrationFileError: (with ``path=None``) if the data is not a valid isotonic calibration.
        """
        if not isinstance(data, dict):
            raise CalibrationFileError(None, f"expected a JSON object, got {type(data).__name__}")
        if data.get("kind") != "isotonic":
            raise CalibrationFileError(None, f"unsupported calibration kind {data.get('kind')!r}")
        x, y, n_pairs, source = data.get("x"), data.get("y"), data.get("n_pairs"), data.get("source")
        for name, values in (("x", x), ("y", y)):
            if not isinstance(values, list) or not all(
                isinstance(value, int | float) and not isinstance(value, bool) for value in values
            ):
                raise CalibrationFileError(None, f"field {name!r} must be a list of numbers")
        if isinstance(n_pairs, bool) or not isinstance(n_pairs, int) or n_pairs < 0:
            raise CalibrationFileError(
                None, f"field 'n_pairs' must be a non-negative integer, got {n_pairs!r}"
            )
        if source is not None and not isinstance(source, str):
            raise CalibrationFileError(None, f"field 'source' must be a string or null, got {source!r}")
        try:
            return cls(
                np.asarray(x, dtype=np.float64),
                np.asarray(y, dtype=np.float64),
                n_pairs=n_pairs,
                source=source,
            )
        except ValueError as exc:
            raise CalibrationFileError(None, str(exc)) from exc

    def save(self, folder: str | Path) -> Path:
        """Write ``folder/calibration.json`` atomically and return its path.

        Written with ``sentsim.persistence.atomic`` (a sibling temporary file, then a rename), so a
        server reading the model folder never sees a half-written calibration.
        """
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        return atomic_write_text(folder / CALIBRATION_FILE, self.to_json())

    def to_json(self) -> str:
        """The text of ``calibration.json`` (what ``save`` writes, and a model folder holds)."""
        return json.dumps(self.to_dict(), indent=2, allow_nan=False) + "\n"

    @classmethod
    def load(cls, folder: str | Path) -> IsotonicCalibration | None:
        """Read ``folder/calibration.json``; ``None`` if the model has no calibration.

        Raises:
            CalibrationFileError: naming the file, if it exists but cannot be read or is invalid.
        """
        path = Path(folder) / CALIBRATION_FILE
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except (OSError, UnicodeDecodeError) as exc:
            raise CalibrationFileError(path, f"cannot read calibration: {exc}") from exc
        try:
            data = json.loads(text, parse_constant=_reject_constant)
        except ValueError as exc:
            raise CalibrationFileError(path, f"not valid JSON: {exc}") from exc
        try:
            return cls.from_dict(data)
        except CalibrationFileError as exc:
            raise CalibrationFileError(path, exc.reason) from exc


def aligned_cosines(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """Cosine of each row pair ``(first[i], second[i])`` of unit vectors, in float64.

    Clipping to ±1 only removes float rounding past the range, which would otherwise look like a bug.
    """
    products = np.asarray(first, dtype=np.float64) * np.asarray(second, dtype=np.float64)
    return np.clip(np.sum(products, axis=1), -1.0, 1.0)


def calibrated_scores(cosines: np.ndarray | float, calibration: IsotonicCalibration | None) -> np.ndarray | None:
    """The 0–5 score of each cosine under the model's ``calibration`` (float64, at least 1-D), or None without one."""
    if calibration is None:
        return None
    return calibration.predict(np.atleast_1d(np.asarray(cosines, dtype=np.float64)))


def require_calibration(calibration: IsotonicCalibration | None) -> IsotonicCalibration:
    """``calibration`` itself; without one, a ConfigError that says how to add one (for the 0–5 scale)."""
    if calibration is None:
        raise ConfigError("this model has no calibration for the 0–5 scale; run `sentsim calibrate MODEL --data ...`")
    return calibration


def _reject_constant(name: str) -> float:
    # json accepts NaN/Infinity by default; a knot like that would make every prediction NaN.
    raise ValueError(f"non-finite number {name} is not allowed")
