"""Comparing two models on the same scored pairs: paired bootstrap of the Spearman difference A − B."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from sentsim.data import PairDataset
from sentsim.evaluation.metrics import paired_bootstrap, pairwise_similarities, spearman
from sentsim.inference.pairs import encode_pairs

if TYPE_CHECKING:
    from sentsim.encoders.bi_encoder import SentenceTransformer

ModelLoader = Callable[[str], "SentenceTransformer"]


@dataclass(frozen=True)
class ModelComparison:
    """Spearman ×100 of both models and the paired-bootstrap difference A − B with its 95% interval."""

    model_a: str
    model_b: str
    data: str
    n_pairs: int
    spearman_a: float
    spearman_b: float
    difference: float
    ci_low: float
    ci_high: float
    p_value: float
    n_resamples: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def compare_models(
    model_a: str,
    model_b: str,
    dataset: PairDataset,
    *,
    batch_size: int = 64,
    dtype: str = "auto",
    device: str = "cpu",
    bootstrap: int = 1000,
    seed: int = 0,
    show_progress: bool | None = None,
    load_model: ModelLoader | None = None,
) -> ModelComparison:
    """Both models score ``dataset``; resampling those pairs gives A − B with an interval and a p-value.

    The models are loaded one at a time (``load_model``, default: `SentenceTransformer` on ``device``)
    and dropped after encoding, so two large models never sit in memory together.
    """
    load = load_model or _loader(device)
    cosines = []
    for name in (model_a, model_b):
        model = load(name)
        first, second = encode_pairs(model, dataset.sentences1, dataset.sentences2, batch_size=batch_size,
                                     dtype=dtype, show_progress=show_progress)
        cosines.append(pairwise_similarities(first, second)["cosine"])
        del model
    return _comparison(model_a, model_b, dataset, cosines[0], cosines[1], bootstrap=bootstrap, seed=seed)


def _comparison(model_a: str, model_b: str, dataset: PairDataset, cosines_a: np.ndarray, cosines_b: np.ndarray, *,
                bootstrap: int, seed: int) -> ModelComparison:
    result = paired_bootstrap(dataset.scores, cosines_a, cosines_b, n_resamples=bootstrap, seed=seed)
    return ModelComparison(
        model_a=model_a, model_b=model_b, data=dataset.source, n_pairs=len(dataset),
        spearman_a=spearman(dataset.scores, cosines_a), spearman_b=spearman(dataset.scores, cosines_b),
        difference=result.difference, ci_low=result.ci_low, ci_high=result.ci_high, p_value=result.p_value,
        n_resamples=result.n_resamples,
    )


def _loader(device: str) -> ModelLoader:
    def load(name: str) -> SentenceTransformer:
        from sentsim.encoders.bi_encoder import SentenceTransformer

        return SentenceTransformer(name, device=device)

    return load
