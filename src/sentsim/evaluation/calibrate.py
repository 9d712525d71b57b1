"""Fitting a model's cosine → 0–5 calibration on scored pairs, with its in-sample error before and after."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from sentsim.data import PairDataset
from sentsim.evaluation.evaluate import evaluate_pairs
from sentsim.evaluation.metrics import mean_absolute_error
from sentsim.inference.calibration import IsotonicCalibration
from sentsim.persistence.card_text import restate_calibration, rewrite_card

if TYPE_CHECKING:
    from sentsim.encoders.bi_encoder import SentenceTransformer


@dataclass(frozen=True)
class CalibrationFit:
    """The fitted map and its mean absolute error on the 0–5 scale, before (5 × cosine) and after."""

    calibration: IsotonicCalibration
    n_pairs: int
    source: str
    mae_cosine_x5: float
    mae_calibrated: float
    saved_to: Path


def calibrate_model(
    model: SentenceTransformer,
    dataset: PairDataset,
    *,
    target: str | Path,
    whole_model: bool,
    batch_size: int = 64,
    dtype: str = "auto",
    show_progress: bool | None = None,
) -> CalibrationFit:
    """Fits an isotonic cosine → 0–5 map on ``dataset`` and saves it.

    ``whole_model`` False writes only the calibration file into ``target`` (the model's own folder) and
    restates the card's "0–5 scores" section if it has one; True saves the whole model, calibration and
    card included, to ``target`` (a copy elsewhere).
    The errors are in-sample: measured on the pairs the map was fitted on.
    """
    result = evaluate_pairs(model, dataset, batch_size=batch_size, dtype=dtype,
                            show_progress=show_progress)
    gold = result.gold * 5.0
    calibration = IsotonicCalibration.fit(result.cosines, gold, source=dataset.source)
    before = mean_absolute_error(result.cosines.clip(0, 1) * 5.0, gold)
    after = mean_absolute_error(calibration.predict(result.cosines), gold)
    target = Path(target)
    if whole_model:
        model.calibration = calibration
        model.save(target)
    else:
        calibration.save(target)
    _restate_card(target / "README.md", calibration, append=whole_model)
    return CalibrationFit(calibration=calibration, n_pairs=len(dataset), source=dataset.source,
                          mae_cosine_x5=before, mae_calibrated=after, saved_to=target)


def _restate_card(card: Path, calibration: IsotonicCalibration, *, append: bool) -> None:
    """Brings the card's "0–5 scores" section up to date with the new map (a trained model's card says
    the map it was saved with was fitted on dev). In place, a card without that section is left as it is:
    sentsim did not write it; a saved copy is sentsim's own and gets the section."""
    rewrite_card(card, lambda text: restate_calibration(text, source=calibration.source,
                                                        n_pairs=calibration.n_pairs, append=append))
