"""Chunked training steps: the same gradient as the whole batch, at a lower peak (``sentsim.training.chunks``)."""

from __future__ import annotations

import contextlib
import json
import shutil
from pathlib import Path

import pytest
import torch

from sentsim.errors import ConfigError
from sentsim.losses import CombinedLoss, CoSENTLoss, CosineSimilarityLoss, MultipleNegativesRankingLoss
from sentsim.training import TrainConfig, train
from sentsim.training.batching import PairCollator, tokenize_pairs
from sentsim.training.chunks import AUTO_PER_PAIR_TOKENS, Chunking, chunk_backward, take_rows
from sentsim.training.dropout import fast_dropout

from .conftest import TRAIN_PAIRS


@pytest.fixture
def no_dropout_dir(tiny_transformer_dir: Path, tmp_path: Path) -> Path:
    """The tiny BERT without dropout: chunks and the whole batch then see the very same network."""
    folder = tmp_path / "tiny-no-dropout"
    shutil.copytree(tiny_transformer_dir, folder)
    config = json.loads((folder / "config.json").read_text())
    config.update(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    (folder / "config.json").write_text(json.dumps(config))
    return folder


def _model(folder: Path):
    from sentsim import SentenceTransformer

    return SentenceTransformer.from_transformer(folder, pooling="mean")


def _batch(model, rows: int = 6):
    a, b, labels = zip(*TRAIN_PAIRS[:rows], strict=True)
    pairs = tokenize_pairs(model.token_ids, a, b, labels)
    return PairCollator(pairs, model.collate, pad_to_multiple_of=None)(list(range(rows)))


def _pair_loss(loss_fn):
    def pair_loss(embeddings: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        first, second = embeddings.float().chunk(2)
        return loss_fn(first, second, targets.float())
    return pair_loss


def _forward(network, features):
    return network(features)["sentence_embedding"]


def _gradients(model, features, labels, loss_fn, *, parts: int, per_pair: bool) -> tuple[torch.Tensor, list]:
    model.train()
    model.zero_grad(set_to_none=True)
    if parts == 1:
        value = _pair_loss(loss_fn)(_forward(model, features), labels)
        value.backward()
    else:
        value = chunk_backward(model, features, labels, chunking=Chunking(max_tokens=1, per_pair=per_pair),
                               parts=parts, forward=_forward, loss=_pair_loss(loss_fn),
                               autocast=contextlib.nullcontext, backward=torch.Tensor.backward,
                               no_sync=contextlib.nullcontext)
    return value.detach(), [p.grad.clone() for p in model.parameters() if p.grad is not None]


@pytest.mark.parametrize(("loss_fn", "per_pair"), [(CosineSimilarityLoss(), True), (CosineSimilarityLoss(), False),
                                                    (CoSENTLoss(), False)])
def test_chunks_give_the_whole_batchs_loss_and_gradient(no_dropout_dir: Path, loss_fn, per_pair: bool) -> None:
    model = _model(no_dropout_dir)
    features, labels = _batch(model)
    whole_loss, whole = _gradients(model, features, labels, loss_fn, parts=1, per_pair=per_pair)
    for parts in (2, 3, 6):
        loss, chunked = _gradients(model, features, labels, loss_fn, parts=parts, per_pair=per_pair)
        torch.testing.assert_close(loss, whole_loss, rtol=1e-5, atol=1e-6)
        assert len(chunked) == len(whole)
        for got, expected in zip(chunked, whole, strict=True):
            torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("fast", [True, False])
def test_the_gradient_cache_replays_the_dropout_of_its_first_pass(tiny_transformer_dir: Path, fast: bool) -> None:
    """With dropout on, the cached path (embed, then replay) equals per-pair chunks that draw each mask once."""
    model = _model(tiny_transformer_dir)
    features, labels = _batch(model)
    with fast_dropout(model, enabled=fast):
        _replay_matches(model, features, labels)


def _replay_matches(model, features, labels) -> None:
    torch.manual_seed(3)
    _, direct = _gradients(model, features, labels, CosineSimilarityLoss(), parts=3, per_pair=True)
    torch.manual_seed(3)
    _, replayed = _gradients(model, features, labels, CosineSimilarityLoss(), parts=3, per_pair=False)
    after_replay = torch.rand(())
    torch.manual_seed(3)
    _gradients(model, features, labels, CosineSimilarityLoss(), parts=3, per_pair=True)
    assert torch.rand(()) == after_replay  # the replay leaves the generator where one pass would
    for got, expected in zip(replayed, direct, strict=True):
        torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-6)


def test_take_rows_cuts_a_chunk_to_its_own_longest_text() -> None:
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 0, 0, 0], [1, 1, 1, 0, 0]])
    features = {"input_ids": torch.arange(15).reshape(3, 5), "attention_mask": mask}
    chunk = take_rows(features, torch.tensor([1, 2]))
    assert chunk["attention_mask"].tolist() == [[1, 1, 0], [1, 1, 1]]
    assert chunk["input_ids"].tolist() == [[5, 6, 7], [10, 11, 12]]
    assert take_rows(features, torch.tensor([1, 2]), multiple=4)["input_ids"].shape == (2, 4)
    assert take_rows(features, torch.tensor([1]), multiple=8)["input_ids"].shape == (1, 5)  # never wider
    left = {"input_ids": torch.zeros(2, 4, dtype=torch.long), "attention_mask": torch.tensor([[0, 0, 1, 1],
                                                                                              [1, 1, 1, 1]])}
    assert take_rows(left, torch.tensor([0]))["attention_mask"].tolist() == [[0, 0, 1, 1]]  # left padding: kept


def test_auto_chunks_per_pair_losses_only() -> None:
    assert Chunking.resolve("auto", loss=CosineSimilarityLoss(), sides=2).max_tokens == AUTO_PER_PAIR_TOKENS
    assert Chunking.resolve("auto", loss=CoSENTLoss(), sides=2).max_tokens is None
    assert Chunking.resolve("auto", loss=MultipleNegativesRankingLoss(), sides=3).max_tokens is None
    combined = CombinedLoss([(CosineSimilarityLoss(), 1.0), (CoSENTLoss(), 0.1)])
    assert not Chunking.resolve("auto", loss=combined, sides=2).per_pair
    assert Chunking.resolve("auto", loss=CombinedLoss([(CosineSimilarityLoss(), 2.0)]), sides=2).per_pair
    ranking = Chunking.resolve(512, loss=CoSENTLoss(), sides=2)
    assert (ranking.max_tokens, ranking.per_pair) == (512, False)
    assert Chunking.resolve(None, loss=CosineSimilarityLoss(), sides=2).max_tokens is None
    features = {"input_ids": torch.zeros(8, 100, dtype=torch.long)}
    assert Chunking(max_tokens=300).parts(features) == 3
    assert Chunking(max_tokens=10).parts(features) == 4  # never more chunks than pairs
    assert Chunking(max_tokens=None).parts(features) == 1
    for bad in (0, -3, 2.5, True, "big"):
        with pytest.raises(ConfigError, match="max_forward_tokens"):
            Chunking.resolve(bad, loss=CoSENTLoss(), sides=2)
        with pytest.raises(ConfigError, match="max_forward_tokens"):
            TrainConfig(max_forward_tokens=bad)


@pytest.mark.parametrize("loss", ["cosine", "cosent"])
def test_training_in_chunks_learns_what_whole_batches_learn(no_dropout_dir: Path, loss: str) -> None:
    a, b, labels = (list(column) for column in zip(*TRAIN_PAIRS, strict=True))
    weights = []
    for limit in (None, 8):
        model = _model(no_dropout_dir)
        config = TrainConfig(loss=loss, batch_size=4, epochs=2, learning_rate=1e-3, dtype="fp32",
                             max_forward_tokens=limit)
        result = train(model, sentences_a=a, sentences_b=b, labels=labels, config=config, quiet=True)
        assert result.steps > 0
        weights.append([p.detach().clone() for p in model.parameters()])
    for chunked, whole in zip(weights[1], weights[0], strict=True):
        torch.testing.assert_close(chunked, whole, rtol=1e-4, atol=1e-5)


def test_accumulation_backpropagates_each_micro_batch_under_its_own_loss(no_dropout_dir: Path) -> None:
    # Hugging Face's gradient accumulation: a ranking loss ranks within each micro-batch, weighted by its rows
    model = _model(no_dropout_dir)
    a, b, labels = zip(*TRAIN_PAIRS[:6], strict=True)
    collate = PairCollator(tokenize_pairs(model.token_ids, a, b, labels), model.collate, pad_to_multiple_of=None)
    features, targets = collate(list(range(6)))
    chunking = Chunking(max_tokens=None, per_pair=False, accumulation=2)
    assert chunking.parts(features) == 2 and chunking.separate_losses
    model.train()
    model.zero_grad(set_to_none=True)
    chunk_backward(model, features, targets, chunking=chunking, parts=2, forward=_forward,
                   loss=_pair_loss(CoSENTLoss()), autocast=contextlib.nullcontext, backward=torch.Tensor.backward,
                   no_sync=contextlib.nullcontext)
    accumulated = [p.grad.clone() for p in model.parameters() if p.grad is not None]
    model.zero_grad(set_to_none=True)
    for rows in ([0, 1, 2], [3, 4, 5]):
        micro, micro_targets = collate(rows)
        (_pair_loss(CoSENTLoss())(_forward(model, micro), micro_targets) * 0.5).backward()
    separate = [p.grad.clone() for p in model.parameters() if p.grad is not None]
    for got, expected in zip(accumulated, separate, strict=True):
        torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-6)
    _, whole = _gradients(model, features, targets, CoSENTLoss(), parts=1, per_pair=False)
    assert not all(torch.allclose(got, other, rtol=1e-3) for got, other in zip(accumulated, whole, strict=True))


def test_accumulation_sets_the_least_number_of_parts() -> None:
    features = {"input_ids": torch.zeros(8, 100, dtype=torch.long)}
    assert Chunking(max_tokens=None, accumulation=3).parts(features) == 3
    assert Chunking(max_tokens=300, per_pair=True, accumulation=2).parts(features) == 3  # the token limit, more
    assert Chunking(max_tokens=None, accumulation=16).parts(features) == 4  # never more parts than pairs
    with pytest.raises(ConfigError, match="gradient accumulation with a ranking loss"):
        Chunking.resolve(512, loss=CoSENTLoss(), sides=2, accumulation=2)
    for bad in (0, True, 2.0, 9):
        with pytest.raises(ConfigError, match="accumulation_steps"):
            TrainConfig(batch_size=8, accumulation_steps=bad)


def test_accumulating_a_per_pair_loss_learns_what_whole_batches_learn(no_dropout_dir: Path) -> None:
    a, b, labels = (list(column) for column in zip(*TRAIN_PAIRS, strict=True))
    weights = []
    for accumulation in (1, 2):
        model = _model(no_dropout_dir)
        config = TrainConfig(loss="cosine", batch_size=4, epochs=2, learning_rate=1e-3, dtype="fp32",
                             accumulation_steps=accumulation)
        result = train(model, sentences_a=a, sentences_b=b, labels=labels, config=config, quiet=True)
        assert result.steps == 6  # 10 pairs in batches of 4, twice: the optimizer steps once per batch
        weights.append([p.detach().clone() for p in model.parameters()])
    for accumulated, whole in zip(weights[1], weights[0], strict=True):
        torch.testing.assert_close(accumulated, whole, rtol=1e-4, atol=1e-5)


# -- CachedMultipleNegativesRankingLoss: the gradient cache, asked for by the loss ---------------------------
def test_the_cached_in_batch_loss_learns_what_the_whole_batch_learns(no_dropout_dir: Path) -> None:
    from sentsim.losses import CachedMultipleNegativesRankingLoss

    a, b = [a for a, _, _ in TRAIN_PAIRS], [b for _, b, _ in TRAIN_PAIRS]
    weights, losses = [], []
    for loss_class, options in ((MultipleNegativesRankingLoss, {}), (CachedMultipleNegativesRankingLoss,
                                                                     {"mini_batch_size": 3})):
        model = _model(no_dropout_dir)
        config = TrainConfig(batch_size=5, epochs=2, learning_rate=1e-3, dtype="fp32", log_every=1)
        result = train(model, sentences_a=a, sentences_b=b, config=config, loss=loss_class(model, **options),
                       quiet=True)
        losses.append([record["loss"] for record in result.records if record["kind"] == "train"])
        weights.append([parameter.detach().clone() for parameter in model.parameters()])
    assert losses[1] == pytest.approx(losses[0], abs=1e-5)
    for cached, whole in zip(weights[1], weights[0], strict=True):
        torch.testing.assert_close(cached, whole, rtol=1e-4, atol=1e-5)


def test_mini_batch_size_sets_the_texts_per_forward_pass() -> None:
    from sentsim.losses import CachedMultipleNegativesRankingLoss, MatryoshkaLoss

    loss = CachedMultipleNegativesRankingLoss(mini_batch_size=4)
    chunking = Chunking.resolve("auto", loss=loss, sides=2)
    features = {"input_ids": torch.ones(16, 5, dtype=torch.long), "attention_mask": torch.ones(16, 5)}
    assert (chunking.max_texts, chunking.max_tokens, chunking.parts(features)) == (4, None, 4)
    assert not chunking.separate_losses  # a ranking loss: one loss over the batch, the gradient cache
    wrapped = Chunking.resolve("auto", loss=MatryoshkaLoss(None, loss, [8, 4]), sides=2)
    assert wrapped.max_texts == 4
    with pytest.raises(ConfigError, match="gradient accumulation with a ranking loss runs each micro-batch whole"):
        Chunking.resolve("auto", loss=loss, sides=2, accumulation=2)
    for bad in (0, True, 2.5):
        with pytest.raises(ConfigError, match="mini_batch_size must be a whole number"):
            CachedMultipleNegativesRankingLoss(mini_batch_size=bad)
    with pytest.raises(ConfigError, match="gather_across_devices=True is not supported"):
        CachedMultipleNegativesRankingLoss(gather_across_devices=True)
