"""Training objectives over pair embeddings: cosine MSE, CoSENT, AnglE, weighted sums, the name registry.

Every loss here is a small ``torch.nn.Module`` with one call signature,
``loss(embeddings_a, embeddings_b, labels) -> scalar``, so the training loop can swap objectives by name
without knowing which one it holds. ``embeddings_a`` and ``embeddings_b`` are ``(batch, dim)`` outputs of
the same network for the two sentences of each pair, and ``labels`` are gold similarities scaled to 0–1.

Constructors take an optional first positional ``model`` argument that is stored and otherwise ignored:
sentsim computes embeddings outside the loss, but code written for sentence-transformers calls
``losses.CosineSimilarityLoss(model)`` and should keep working unchanged.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sentsim.errors import ConfigError
from sentsim.losses.checks import check_scale as _check_scale
from sentsim.losses.in_batch import (
    CachedMultipleNegativesRankingLoss,
    MultipleNegativesRankingLoss,
    in_batch_duplicates,
)
from sentsim.losses.matryoshka import MatryoshkaLoss

__all__ = [
    "LOSSES",
    "AnglELoss",
    "CachedMultipleNegativesRankingLoss",
    "CoSENTLoss",
    "CombinedLoss",
    "CosineSimilarityLoss",
    "MatryoshkaLoss",
    "MultipleNegativesRankingLoss",
    "angle_similarity",
    "build_loss",
    "in_batch_duplicates",
    "ranking_loss",
]


def _check_inputs(embeddings_a: Tensor, embeddings_b: Tensor, labels: Tensor) -> None:
    # A silent broadcast between (batch,) labels and (batch, 1) scores would train on garbage, so
    # shapes are checked up front; these are programming errors, hence ValueError, not ConfigError.
    if embeddings_a.ndim != 2 or embeddings_a.shape != embeddings_b.shape:
        raise ValueError(
            "embeddings must both be (batch, dim) with the same shape, got "
            f"{tuple(embeddings_a.shape)} and {tuple(embeddings_b.shape)}"
        )
    if labels.shape != (embeddings_a.shape[0],):
        raise ValueError(
            f"labels must have shape ({embeddings_a.shape[0]},) to match the batch, got {tuple(labels.shape)}"
        )


def angle_similarity(embeddings_a: Tensor, embeddings_b: Tensor) -> Tensor:
    """Per-pair AnglE similarity: the summed real and imaginary parts of the normalised complex quotient.

    AnglE (Li & Li, 2023) reads dimension ``i`` and ``i + dim/2`` of an embedding as the real and
    imaginary part of one complex number, so a pair is compared by the *angle* between the two complex
    vectors rather than by cosine alone. This avoids the flat gradients cosine has near ±1, where
    STS pairs with high scores pile up. Dividing ``a`` by ``b`` in complex space and normalising by both
    vector norms gives ``Re = cos(a, b)`` and ``Im = Σ (a_im·b_re − a_re·b_im) / (|a||b|)``; the score is
    ``|Re + Im|`` — the same quantity sentence-transformers' ``pairwise_angle_sim`` returns.

    An odd dimension is padded with one zero so it can be split in halves, as sentence-transformers does.

    Args:
        embeddings_a: ``(batch, dim)`` first sentences.
        embeddings_b: ``(batch, dim)`` second sentences.

    Returns:
        ``(batch,)`` similarities, not bounded to [0, 1] (the sum of two terms in [-1, 1]).
    """
    if embeddings_a.shape[-1] % 2:
        embeddings_a = F.pad(embeddings_a, (0, 1))
        embeddings_b = F.pad(embeddings_b, (0, 1))
    unit_a = F.normalize(embeddings_a, p=2, dim=-1)
    unit_b = F.normalize(embeddings_b, p=2, dim=-1)
    real_a, imag_a = unit_a.chunk(2, dim=-1)
    real_b, imag_b = unit_b.chunk(2, dim=-1)
    # Re(a · conj(b)) and Im(a · conj(b)) summed over the complex coordinates; with unit vectors this is the
    # normalised quotient a / b scaled by |b|², whose direction is what carries the angle.
    real_part = (real_a * real_b + imag_a * imag_b).sum(dim=-1)
    imag_part = (imag_a * real_b - real_a * imag_b).sum(dim=-1)
    return (real_part + imag_part).abs()


def ranking_loss(similarities: Tensor, labels: Tensor, *, scale: float) -> Tensor:
    """CoSENT ranking loss on precomputed pair similarities.

    Computes ``log(1 + Σ_{(i, j): label_i > label_j} exp(scale · (sim_j − sim_i)))``: every pair of pairs
    whose gold order disagrees with the predicted order is penalised, and the absolute similarity values
    do not matter. That is why CoSENT trains faster than cosine MSE, which also forces every cosine
    onto the 0–1 label scale.

    The ``1 +`` is an extra zero logit fed to ``logsumexp``, which keeps the sum stable for large
    ``scale`` and gives exactly 0 when no pair of pairs is ordered (e.g. all labels equal).
    Pairs in the wrong direction are masked to ``-inf`` rather than subtracting a large constant, so the
    result is also correct in half precision.

    Args:
        similarities: ``(batch,)`` predicted similarity per pair.
        labels: ``(batch,)`` gold scores; only their order is used.
        scale: inverse temperature; larger values approach a hard max over the violated orderings.

    Returns:
        Scalar loss.
    """
    # Float32 at least: with scale 20 the differences reach ±40 and bf16 logits would round them coarsely.
    dtype = torch.promote_types(similarities.dtype, torch.float32)
    scores = similarities.to(dtype) * scale
    labels = labels.to(device=scores.device, dtype=dtype)
    # differences[i, j] = sim_j − sim_i, counted only where label_i > label_j.
    differences = scores[None, :] - scores[:, None]
    should_rank_higher = labels[:, None] > labels[None, :]
    differences = differences.masked_fill(~should_rank_higher, float("-inf"))
    logits = torch.cat([differences.flatten(), differences.new_zeros(1)])
    return torch.logsumexp(logits, dim=0)


class CosineSimilarityLoss(nn.Module):
    """Mean squared error between cos(u, v) and the 0–1 gold score: the original SBERT STS objective.

    It asks the cosine itself to equal the label, so the trained model's raw cosines are directly
    interpretable as scores, at the price of slower training than the ranking losses.

    ``per_pair = True``: the loss is a mean of one term per pair, so a batch can be backpropagated
    in chunks of pairs without changing the gradient (``sentsim.training.chunks``).
    """

    per_pair = True

    def __init__(self, model: nn.Module | None = None) -> None:
        """Create the loss.

        Args:
            model: ignored; stored as ``self.model`` only for sentence-transformers call compatibility.
        """
        super().__init__()
        self.model = model

    def forward(self, embeddings_a: Tensor, embeddings_b: Tensor, labels: Tensor) -> Tensor:
        """Return the mean of ``(cos(a_i, b_i) − label_i)²`` over the batch."""
        _check_inputs(embeddings_a, embeddings_b, labels)
        cosines = F.cosine_similarity(embeddings_a, embeddings_b, dim=-1)
        return F.mse_loss(cosines, labels.to(device=cosines.device, dtype=cosines.dtype))


class CoSENTLoss(nn.Module):
    """CoSENT (Su Jianlin, 2022): rank pairs by cosine so higher-scored pairs get higher cosines.

    Only the order of the labels within a batch matters, which matches how STS is evaluated (Spearman).
    """

    def __init__(self, model: nn.Module | None = None, *, scale: float = 20.0) -> None:
        """Create the loss.

        Args:
            model: ignored; stored as ``self.model`` only for sentence-transformers call compatibility.
            scale: inverse temperature on the cosine differences; 20 is the value from the CoSENT paper.
        """
        super().__init__()
        self.model = model
        self.scale = _check_scale(scale)

    def forward(self, embeddings_a: Tensor, embeddings_b: Tensor, labels: Tensor) -> Tensor:
        """Return the CoSENT ranking loss over the cosines of the batch's pairs."""
        _check_inputs(embeddings_a, embeddings_b, labels)
        cosines = F.cosine_similarity(embeddings_a, embeddings_b, dim=-1)
        return ranking_loss(cosines, labels, scale=self.scale)


class AnglELoss(nn.Module):
    """AnglE (Li & Li, 2023): the CoSENT ranking objective on complex-space angle similarity.

    See :func:`angle_similarity` for why the angle is used instead of the cosine.
    """

    def __init__(self, model: nn.Module | None = None, *, scale: float = 20.0) -> None:
        """Create the loss.

        Args:
            model: ignored; stored as ``self.model`` only for sentence-transformers call compatibility.
            scale: inverse temperature on the similarity differences (20, as in the AnglE paper).
        """
        super().__init__()
        self.model = model
        self.scale = _check_scale(scale)

    def forward(self, embeddings_a: Tensor, embeddings_b: Tensor, labels: Tensor) -> Tensor:
        """Return the ranking loss over the AnglE similarities of the batch's pairs."""
        _check_inputs(embeddings_a, embeddings_b, labels)
        return ranking_loss(angle_similarity(embeddings_a, embeddings_b), labels, scale=self.scale)


class CombinedLoss(nn.Module):
    """Weighted sum of losses that share the pair-embedding call signature.

    Lets a run mix, say, cosine MSE (keeps raw cosines on the label scale) with CoSENT (fast ranking
    signal) without the training loop knowing there is more than one objective.
    """

    def __init__(self, parts: Sequence[tuple[nn.Module, float]]) -> None:
        """Create the loss.

        Args:
            parts: ``(loss, weight)`` pairs; weights must be finite and at least one non-zero.

        Raises:
            ConfigError: if ``parts`` is empty or a weight is not a finite number.
        """
        super().__init__()
        if not parts:
            raise ConfigError("CombinedLoss needs at least one (loss, weight) part")
        weights = []
        for loss, weight in parts:
            if not (isinstance(weight, int | float) and math.isfinite(weight)):
                raise ConfigError(f"loss weight must be a finite number, got {weight!r} for {loss!r}")
            weights.append(float(weight))
        if not any(weights):
            raise ConfigError("CombinedLoss weights are all zero, so nothing would be trained")
        # ModuleList so that .to(device), state_dict() and parameters() reach any part that has state.
        self.losses = nn.ModuleList(loss for loss, _ in parts)
        self.weights = tuple(weights)

    @property
    def per_pair(self) -> bool:
        """A weighted sum of per-pair means is one too, when every part is (``sentsim.training.chunks``)."""
        return all(getattr(loss, "per_pair", False) for loss in self.losses)

    def forward(self, embeddings_a: Tensor, embeddings_b: Tensor, labels: Tensor) -> Tensor:
        """Return ``Σ weight_k · loss_k(embeddings_a, embeddings_b, labels)``."""
        total = None
        for loss, weight in zip(self.losses, self.weights, strict=True):
            term = weight * loss(embeddings_a, embeddings_b, labels)
            total = term if total is None else total + term
        return total


LOSSES: dict[str, type[nn.Module]] = {
    "cosine": CosineSimilarityLoss,
    "cosent": CoSENTLoss,
    "angle": AnglELoss,
    "mnrl": MultipleNegativesRankingLoss,
}
# Losses whose constructor takes ``scale``; build_loss needs to know where a given scale goes.
_SCALED = frozenset({"cosent", "angle", "mnrl"})


def build_loss(name: str, *, scale: float | None = None) -> nn.Module:
    """Build a loss from its registry name, or a weighted sum from terms joined by ``+``.

    A term is ``name`` or ``weight*name``: ``"cosine+cosent"`` sums both with weight 1.0 (adding a
    part adds its gradient rather than diluting the others), while ``"cosine+0.03*cosent"`` adds a
    small ranking term. The weight matters: CoSENT's value and gradients are ~100× those of the
    cosine MSE, so an unweighted sum is CoSENT in all but name. A single name gives the plain loss.

    Args:
        name: a key of :data:`LOSSES`, or several terms joined by ``+``; case and surrounding spaces are
            ignored.
        scale: inverse temperature for the ranking losses (``cosent``, ``angle``); ``None`` keeps their
            default of 20.

    Raises:
        ConfigError: for an unknown or repeated name, a bad weight or scale, or a scale given to a
            combination that contains no loss using it (it would be silently ignored otherwise).
    """
    valid = ", ".join(sorted(LOSSES))
    terms = [_loss_term(part, spec=name, valid=valid) for part in str(name).split("+")]
    names = [term_name for term_name, _ in terms]
    if len(set(names)) != len(names):
        raise ConfigError(f"loss {name!r} names the same loss twice; valid names are {valid}")
    if "mnrl" in names and len(names) > 1:
        raise ConfigError("mnrl trains on unscored (anchor, positive) texts and cannot be combined with scored losses")
    if scale is not None:
        _check_scale(scale)
        if not _SCALED.intersection(names):
            raise ConfigError(
                f"a loss scale was given but {name!r} does not use one; only {', '.join(sorted(_SCALED))} do"
            )
    losses = [
        (LOSSES[part](scale=scale) if part in _SCALED and scale is not None else LOSSES[part](), weight)
        for part, weight in terms
    ]
    if len(losses) == 1 and losses[0][1] == 1.0:
        return losses[0][0]
    return CombinedLoss(losses)


def _loss_term(part: str, *, spec: str, valid: str) -> tuple[str, float]:
    """``"cosent"`` → ("cosent", 1.0); ``"0.03*cosent"`` → ("cosent", 0.03)."""
    weight_text, star, loss_name = part.strip().lower().rpartition("*")
    loss_name = loss_name.strip()
    if loss_name not in LOSSES:
        raise ConfigError(
            f"unknown loss {spec!r}: valid names are {valid}, or several joined by '+' with optional weights "
            "(e.g. 'cosine+cosent' or 'cosine+0.03*cosent')"
        )
    if not star:
        return loss_name, 1.0
    try:
        weight = float(weight_text)
    except ValueError:
        raise ConfigError(f"loss {spec!r}: weight {weight_text.strip()!r} is not a number") from None
    if not math.isfinite(weight) or weight <= 0:
        raise ConfigError(f"loss {spec!r}: weight {weight_text.strip()!r} must be a positive number")
    return loss_name, weight


def __getattr__(name: str) -> object:
    """A sentence-transformers loss sentsim does not have gets an error that lists the ones it has."""
    if name.startswith("__") or not name.endswith("Loss"):
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    have = ", ".join(sorted(item for item in __all__ if item.endswith("Loss") and item != "CombinedLoss"))
    raise AttributeError(f"sentsim.losses has no {name}: sentsim trains with {have} (sentence-transformers' "
                         "other losses are not implemented)")

