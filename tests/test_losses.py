"""Tests for sentsim.losses: known answers, gradients, and the name registry."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from sentsim import losses
from sentsim.errors import ConfigError


@pytest.fixture
def batch() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    embeddings_a = torch.randn(12, 16, generator=generator)
    embeddings_b = torch.randn(12, 16, generator=generator)
    labels = torch.rand(12, generator=generator).mul(5).round().div(5)  # ties, as in STSb
    return embeddings_a, embeddings_b, labels


def naive_cosent(similarities: torch.Tensor, labels: torch.Tensor, scale: float) -> float:
    """Direct O(n²) reading of the CoSENT formula, in float64 Python arithmetic."""
    total = 1.0
    for i in range(len(labels)):
        for j in range(len(labels)):
            if labels[i] > labels[j]:
                total += math.exp(scale * (float(similarities[j]) - float(similarities[i])))
    return math.log(total)


def complex_division_angle(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """AnglE's original form: divide a by b as complex vectors, normalise by both norms, sum re + im."""
    real_a, imag_a = a.double().chunk(2, dim=1)
    real_b, imag_b = b.double().chunk(2, dim=1)
    norm_b_squared = (real_b**2 + imag_b**2).sum(dim=1, keepdim=True)
    real = (real_a * real_b + imag_a * imag_b) / norm_b_squared
    imag = (imag_a * real_b - real_a * imag_b) / norm_b_squared
    norm_a = (real_a**2 + imag_a**2).sum(dim=1, keepdim=True).sqrt()
    ratio = norm_a / norm_b_squared.sqrt()
    return ((real + imag) / ratio).sum(dim=1).abs()


def test_cosine_loss_is_mse_of_cosine_and_label(batch):
    embeddings_a, embeddings_b, labels = batch
    expected = ((F.cosine_similarity(embeddings_a, embeddings_b) - labels) ** 2).mean()
    assert torch.allclose(losses.CosineSimilarityLoss()(embeddings_a, embeddings_b, labels), expected)


def test_cosent_matches_naive_loop(batch):
    embeddings_a, embeddings_b, labels = batch
    cosines = F.cosine_similarity(embeddings_a, embeddings_b)
    for scale in (1.0, 20.0):
        loss = losses.CoSENTLoss(scale=scale)(embeddings_a, embeddings_b, labels)
        assert loss.item() == pytest.approx(naive_cosent(cosines, labels, scale), rel=1e-5)


def test_cosent_is_stable_for_large_scale(batch):
    embeddings_a, embeddings_b, labels = batch
    loss = losses.CoSENTLoss(scale=1e4)(embeddings_a, embeddings_b, labels)
    assert torch.isfinite(loss)


def test_angle_similarity_matches_complex_division(batch):
    embeddings_a, embeddings_b, _ = batch
    expected = complex_division_angle(embeddings_a, embeddings_b)
    assert torch.allclose(losses.angle_similarity(embeddings_a, embeddings_b).double(), expected, atol=1e-6)


def test_angle_similarity_pads_odd_dimensions():
    a, b = torch.randn(3, 7), torch.randn(3, 7)
    expected = complex_division_angle(F.pad(a, (0, 1)), F.pad(b, (0, 1)))
    assert torch.allclose(losses.angle_similarity(a, b).double(), expected, atol=1e-6)


def test_angle_loss_matches_ranking_loss_on_angle_similarity(batch):
    embeddings_a, embeddings_b, labels = batch
    angles = losses.angle_similarity(embeddings_a, embeddings_b)
    loss = losses.AnglELoss()(embeddings_a, embeddings_b, labels)
    assert loss.item() == pytest.approx(naive_cosent(angles, labels, 20.0), rel=1e-5)


def pairs_with_cosines(cosines: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Unit pairs with the given cosines in [0, 1]; their AnglE similarity equals the cosine too.

    All the mass is in the "real" half of the dimensions, so the sine term of AnglE is zero.
    """
    a = torch.zeros(len(cosines), 4)
    a[:, 0] = 1.0
    b = torch.zeros(len(cosines), 4)
    b[:, 0] = cosines
    b[:, 1] = torch.sqrt(1.0 - cosines**2)
    return a, b


@pytest.mark.parametrize("loss_class", [losses.CoSENTLoss, losses.AnglELoss])
def test_ranking_losses_near_zero_when_order_is_right_and_positive_otherwise(loss_class):
    labels = torch.tensor([0.0, 0.2, 0.4, 0.6, 0.8, 1.0])
    loss = loss_class(scale=200.0)
    assert loss(*pairs_with_cosines(labels), labels).item() < 1e-6
    assert loss(*pairs_with_cosines(1.0 - labels), labels).item() > 1.0


def test_ranking_loss_is_zero_when_all_labels_tie():
    a, b = torch.randn(5, 8), torch.randn(5, 8)
    assert losses.CoSENTLoss()(a, b, torch.full((5,), 0.4)).item() == 0.0


@pytest.mark.parametrize("name", ["cosine", "cosent", "angle", "cosine+cosent"])
def test_gradients_flow_to_embeddings(batch, name):
    embeddings_a, embeddings_b, labels = batch
    embeddings_a = embeddings_a.clone().requires_grad_()
    embeddings_b = embeddings_b.clone().requires_grad_()
    loss = losses.build_loss(name)(embeddings_a, embeddings_b, labels)
    assert loss.ndim == 0
    loss.backward()
    for grad in (embeddings_a.grad, embeddings_b.grad):
        assert grad is not None and torch.isfinite(grad).all() and grad.abs().sum() > 0


def test_combined_loss_is_weighted_sum(batch):
    cosine, cosent = losses.CosineSimilarityLoss(), losses.CoSENTLoss()
    combined = losses.CombinedLoss([(cosine, 2.0), (cosent, 0.5)])
    expected = 2.0 * cosine(*batch) + 0.5 * cosent(*batch)
    assert torch.allclose(combined(*batch), expected)


def test_combined_loss_rejects_bad_parts():
    with pytest.raises(ConfigError):
        losses.CombinedLoss([])
    with pytest.raises(ConfigError):
        losses.CombinedLoss([(losses.CoSENTLoss(), float("nan"))])


def test_model_argument_is_accepted_and_stored():
    model = torch.nn.Linear(2, 2)
    for loss_class in losses.LOSSES.values():
        assert loss_class(model).model is model


def test_build_loss_names_and_scale():
    assert set(losses.LOSSES) == {"cosine", "cosent", "angle", "mnrl"}
    assert isinstance(losses.build_loss("cosine"), losses.CosineSimilarityLoss)
    assert isinstance(losses.build_loss(" CoSENT "), losses.CoSENTLoss)
    assert losses.build_loss("angle", scale=5.0).scale == 5.0
    combined = losses.build_loss("cosine+cosent", scale=7.0)
    assert isinstance(combined, losses.CombinedLoss)
    assert combined.weights == (1.0, 1.0)
    assert combined.losses[1].scale == 7.0


def test_build_loss_weighted_terms(batch):
    combined = losses.build_loss("cosine + 0.03*CoSENT")
    assert isinstance(combined, losses.CombinedLoss) and combined.weights == (1.0, 0.03)
    embeddings_a, embeddings_b, labels = batch
    expected = losses.CosineSimilarityLoss()(embeddings_a, embeddings_b, labels) + \
        0.03 * losses.CoSENTLoss()(embeddings_a, embeddings_b, labels)
    assert torch.allclose(combined(embeddings_a, embeddings_b, labels), expected)
    halved = losses.build_loss("0.5*cosine")
    assert isinstance(halved, losses.CombinedLoss) and halved.weights == (0.5,)


@pytest.mark.parametrize(
    ("name", "scale"),
    [("triplet", None), ("cosine+nope", None), ("cosent+cosent", None), ("cosine", 20.0), ("cosent", -1.0),
     ("cosine+x*cosent", None), ("cosine+0*cosent", None), ("cosine+-1*cosent", None), ("cosine+0.1*cosine", None)],
)
def test_build_loss_errors(name, scale):
    with pytest.raises(ConfigError) as excinfo:
        losses.build_loss(name, scale=scale)
    if name in ("triplet", "cosine+nope"):
        assert "angle, cosent, cosine" in str(excinfo.value)


def test_shape_mismatch_is_an_error(batch):
    embeddings_a, embeddings_b, labels = batch
    with pytest.raises(ValueError):
        losses.CosineSimilarityLoss()(embeddings_a, embeddings_b[:3], labels)
    with pytest.raises(ValueError):
        losses.CoSENTLoss()(embeddings_a, embeddings_b, labels[:, None])
