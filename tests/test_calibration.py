"""Tests for sentsim.calibration: monotone fit, range, persistence and error reporting."""

from __future__ import annotations

import json

import numpy as np
import pytest

from sentsim.errors import SentsimError
from sentsim.inference.calibration import CALIBRATION_FILE, CalibrationFileError, IsotonicCalibration


@pytest.fixture
def nonlinear_pairs() -> tuple[np.ndarray, np.ndarray]:
    """Cosines squeezed into [0.3, 1] with a convex relation to gold, like a trained bi-encoder."""
    rng = np.random.default_rng(0)
    gold = rng.uniform(0.0, 5.0, size=600)
    cosines = 0.3 + 0.7 * (gold / 5.0) ** 2 + rng.normal(0.0, 0.03, size=gold.size)
    return np.clip(cosines, -1.0, 1.0), gold


def test_fit_is_monotone_and_in_range(nonlinear_pairs):
    cosines, gold = nonlinear_pairs
    calibration = IsotonicCalibration.fit(cosines, gold, source="synthetic")
    grid = np.linspace(-1.0, 1.0, 501)
    predicted = calibration.predict(grid)
    assert np.all(np.diff(predicted) >= 0)
    assert predicted.min() >= 0.0 and predicted.max() <= 5.0
    assert np.all(np.diff(calibration.x) > 0) and np.all(np.diff(calibration.y) >= 0)
    assert calibration.n_pairs == 600 and calibration.source == "synthetic"


def test_flat_beyond_the_fitted_range(nonlinear_pairs):
    cosines, gold = nonlinear_pairs
    calibration = IsotonicCalibration.fit(cosines, gold)
    assert calibration.predict(-1.0) == pytest.approx(calibration.y[0])
    assert calibration.predict(cosines.max() + 0.5) == pytest.approx(calibration.y[-1])


def test_calibration_beats_five_times_cosine(nonlinear_pairs):
    cosines, gold = nonlinear_pairs
    rng = np.random.default_rng(1)
    order = rng.permutation(gold.size)
    fit_part, test_part = order[:400], order[400:]
    calibration = IsotonicCalibration.fit(cosines[fit_part], gold[fit_part])
    calibrated_error = np.abs(calibration.predict(cosines[test_part]) - gold[test_part]).mean()
    naive_error = np.abs(5.0 * cosines[test_part] - gold[test_part]).mean()
    assert calibrated_error < 0.6 * naive_error


def test_fit_reproduces_isotonic_steps_and_merges_ties():
    cosines = np.array([0.1, 0.2, 0.2, 0.3, 0.4])
    gold = np.array([1.0, 4.0, 2.0, 2.0, 5.0])
    calibration = IsotonicCalibration.fit(cosines, gold)
    # The tied pair becomes one point (mean 3, weight 2) which violates order with the 2 after it;
    # pooling by weight gives (2·3 + 2) / 3 = 8/3 for both cosines.
    assert calibration.predict(np.array([0.1, 0.2, 0.3, 0.4])) == pytest.approx([1.0, 8 / 3, 8 / 3, 5.0])
    assert calibration.x.tolist() == [0.1, 0.2, 0.3, 0.4]
    assert calibration.predict(0.35) == pytest.approx((8 / 3 + 5.0) / 2)  # linear between block ends


def test_constant_blocks_collapse_to_their_ends():
    cosines = np.linspace(0.0, 1.0, 11)
    gold = np.array([0, 0, 0, 0, 0, 5, 5, 5, 5, 5, 5], dtype=float)
    calibration = IsotonicCalibration.fit(cosines, gold)
    assert calibration.x.tolist() == pytest.approx([0.0, 0.4, 0.5, 1.0])
    assert calibration.y.tolist() == [0.0, 0.0, 5.0, 5.0]


def test_fit_rejects_bad_input():
    with pytest.raises(ValueError):
        IsotonicCalibration.fit([0.1, 0.2], [1.0])
    with pytest.raises(ValueError):
        IsotonicCalibration.fit([0.1], [1.0])
    with pytest.raises(ValueError):
        IsotonicCalibration.fit([0.1, np.nan], [1.0, 2.0])


def test_warns_when_given_normalised_labels():
    cosines = np.linspace(0, 1, 30)
    with pytest.warns(UserWarning, match="0–5"):
        IsotonicCalibration.fit(cosines, cosines)


def test_save_load_round_trip(tmp_path, nonlinear_pairs):
    cosines, gold = nonlinear_pairs
    calibration = IsotonicCalibration.fit(cosines, gold, source="stsb dev")
    path = calibration.save(tmp_path / "model")
    assert path == tmp_path / "model" / CALIBRATION_FILE
    assert [p.name for p in path.parent.iterdir()] == [CALIBRATION_FILE]  # no temp file left behind
    stored = json.loads(path.read_text())
    assert stored["kind"] == "isotonic" and stored["n_pairs"] == 600 and stored["source"] == "stsb dev"
    loaded = IsotonicCalibration.load(tmp_path / "model")
    assert loaded is not None
    assert np.array_equal(loaded.x, calibration.x) and np.array_equal(loaded.y, calibration.y)
    assert np.array_equal(loaded.predict(cosines), calibration.predict(cosines))
    assert IsotonicCalibration.from_dict(calibration.to_dict()).to_dict() == calibration.to_dict()


def test_load_missing_returns_none(tmp_path):
    assert IsotonicCalibration.load(tmp_path) is None
    assert IsotonicCalibration.load(tmp_path / "absent") is None


@pytest.mark.parametrize(
    "content",
    [
        "{not json",
        "[1, 2]",
        '{"kind": "platt", "x": [0.0], "y": [1.0], "n_pairs": 1, "source": null}',
        '{"kind": "isotonic", "x": [0.0, 1.0], "y": [1.0], "n_pairs": 2, "source": null}',
        '{"kind": "isotonic", "x": [1.0, 0.0], "y": [1.0, 2.0], "n_pairs": 2, "source": null}',
        '{"kind": "isotonic", "x": [0.0, NaN], "y": [1.0, 2.0], "n_pairs": 2, "source": null}',
        '{"kind": "isotonic", "x": [0.0, 1.0], "y": [1.0, 9.0], "n_pairs": 2, "source": null}',
        '{"kind": "isotonic", "x": [0.0, "a"], "y": [1.0, 2.0], "n_pairs": 2, "source": null}',
        '{"kind": "isotonic", "x": [0.0, 1.0], "y": [1.0, 2.0], "n_pairs": "2", "source": null}',
    ],
)
def test_corrupt_file_raises_with_path(tmp_path, content):
    path = tmp_path / CALIBRATION_FILE
    path.write_text(content)
    with pytest.raises(CalibrationFileError) as excinfo:
        IsotonicCalibration.load(tmp_path)
    assert isinstance(excinfo.value, SentsimError)
    assert excinfo.value.path == str(path)
    assert str(path) in str(excinfo.value)
