"""The cross-encoder, silver-pair augmentation and weight averaging, on the tiny random BERT."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from scipy import stats

from sentsim import SentenceTransformer
from sentsim.data import PairDataset, ScoredPair
from sentsim.encoders.cross_encoder import CrossEncoder
from sentsim.errors import ConfigError, ModelLoadError
from sentsim.training import TrainConfig
from sentsim.training.augment import combine, label_pairs, nearest_neighbour_pairs
from sentsim.training.cross import train_cross_encoder
from sentsim.training.soup import average_into, average_state_dicts

from .conftest import TRAIN_PAIRS

A, B, LABELS = (list(column) for column in zip(*TRAIN_PAIRS, strict=True))


def _dataset(pairs=TRAIN_PAIRS, genre: str | None = None) -> PairDataset:
    return PairDataset(pairs=[ScoredPair(a, b, score, genre=genre) for a, b, score in pairs], source="tiny")


# -- cross-encoder ------------------------------------------------------------------------------------
def test_cross_encoder_reads_both_sentences_as_one_sequence(tiny_transformer_dir):
    model = CrossEncoder.from_pretrained(tiny_transformer_dir)
    (ids, types), = model.tokenize_pairs(["a man"], ["a dog is running"])
    tokenizer = model.transformer.tokenizer
    assert ids[0] == tokenizer.cls_token_id and ids.count(tokenizer.sep_token_id) == 2
    first_sep = ids.index(tokenizer.sep_token_id)
    assert types == [0] * (first_sep + 1) + [1] * (len(ids) - first_sep - 1)
    features = model.collate(model.tokenize_pairs(A[:3], B[:3]))
    assert features["token_type_ids"].shape == features["input_ids"].shape
    assert model(features).shape == (3,)


def test_predict_is_in_0_1_symmetric_and_order_free(tiny_transformer_dir):
    model = CrossEncoder.from_pretrained(tiny_transformer_dir, seed=3)
    forward = model.score_pairs(A, B, dtype="fp32")
    backward = model.score_pairs(B, A, dtype="fp32")
    assert forward.shape == (len(A),) and np.all((forward > 0) & (forward < 1))
    np.testing.assert_allclose(forward, backward, atol=1e-6)  # both orders averaged
    one_way = model.score_pairs(A, B, dtype="fp32", symmetric=False)
    assert not np.allclose(one_way, model.score_pairs(B, A, dtype="fp32", symmetric=False))
    # batching and length sorting do not change the scores or their order
    np.testing.assert_allclose(model.score_pairs(A, B, dtype="fp32", batch_size=3), forward, atol=1e-5)
    assert model.score_pairs([], [], dtype="fp32").shape == (0,)
    with pytest.raises(ConfigError, match="as many"):
        model.score_pairs(A, B[:-1])


def test_cross_encoder_saves_and_loads_itself(tiny_transformer_dir, tmp_path: Path):
    model = CrossEncoder.from_pretrained(tiny_transformer_dir, seed=5)
    expected = model.score_pairs(A, B, dtype="fp32")
    model.save(tmp_path / "ce")
    assert not list(tmp_path.glob("*.tmp*")), "no temporary folder is left behind"
    loaded = CrossEncoder.load(tmp_path / "ce")
    np.testing.assert_allclose(loaded.score_pairs(A, B, dtype="fp32"), expected, atol=1e-6)
    with pytest.raises(ModelLoadError, match="not a sentsim cross-encoder"):
        CrossEncoder.load(tiny_transformer_dir)


def test_cross_encoder_training_learns_and_keeps_the_best_dev_checkpoint(tiny_transformer_dir):
    model = CrossEncoder.from_pretrained(tiny_transformer_dir, seed=0)
    before = model.score_pairs(A, B, dtype="fp32")
    config = TrainConfig(batch_size=4, epochs=8, learning_rate=2e-3, dtype="fp32", log_every=1)
    result = train_cross_encoder(model, dataset=_dataset(genre="main-news"), config=config,
                                 dev=_dataset(genre="main-news"), quiet=True)
    losses = [record["loss"] for record in result.records if record["kind"] == "train"]
    assert all(np.isfinite(losses)) and np.mean(losses[-4:]) < np.mean(losses[:4])
    evals = [record for record in result.records if record["kind"] == "eval"]
    assert {"spearman", "pearson", "spearman_news"} <= set(evals[-1])
    assert result.best_score == max(record["spearman"] for record in evals)
    after = model.score_pairs(A, B, dtype="fp32")
    assert not np.allclose(before, after)
    assert result.best_score == pytest.approx(100 * float(stats.spearmanr(LABELS, after).statistic), abs=1e-6)


# -- silver pairs ------------------------------------------------------------------------------------
def test_nearest_neighbour_pairs_match_brute_force(tiny_model):
    sentences = [*A, *B, A[0]]  # a repeated sentence counts once
    pairs = nearest_neighbour_pairs(tiny_model, sentences, top_k=2, dtype="fp32")
    unique = list(dict.fromkeys(sentences))
    embeddings = torch.nn.functional.normalize(torch.as_tensor(tiny_model.encode(unique, dtype="fp32")), dim=1)
    similarity = embeddings @ embeddings.T
    similarity.fill_diagonal_(-float("inf"))
    expected = set()
    for row in range(len(unique)):
        for column in similarity[row].topk(2).indices.tolist():
            expected.add(frozenset((unique[row], unique[column])))
    found = [frozenset(pair) for pair in pairs]
    assert len(found) == len(set(found)), "each unordered pair once"
    assert set(found) == expected
    assert all(a != b for a, b in pairs)


def test_nearest_neighbour_pairs_leave_out_gold_pairs(tiny_model):
    everything = nearest_neighbour_pairs(tiny_model, [*A, *B], top_k=3, dtype="fp32")
    excluded = everything[:3]
    rest = nearest_neighbour_pairs(tiny_model, [*A, *B], top_k=3, dtype="fp32",
                                   exclude=[(b, a) for a, b in excluded])  # either order is excluded
    assert rest == everything[3:]
    assert nearest_neighbour_pairs(tiny_model, ["only one"], top_k=2) == []
    with pytest.raises(ConfigError, match="top_k"):
        nearest_neighbour_pairs(tiny_model, A, top_k=0)


def test_label_pairs_gives_silver_scores_and_combine_keeps_gold(tiny_transformer_dir):
    teacher = CrossEncoder.from_pretrained(tiny_transformer_dir, seed=1)
    pairs = [(A[0], B[1]), (A[2], A[3])]
    silver = label_pairs(teacher, pairs, dtype="fp32")
    np.testing.assert_allclose(silver.scores, teacher.score_pairs([A[0], A[2]], [B[1], A[3]], dtype="fp32"),
                               atol=1e-6)
    assert silver.genres == ["silver", "silver"]
    both = combine(_dataset(), silver)
    assert len(both) == len(TRAIN_PAIRS) + 2 and both.pairs[: len(TRAIN_PAIRS)] == _dataset().pairs
    assert len(label_pairs(teacher, [])) == 0


# -- weight averaging ----------------------------------------------------------------------------------
def test_average_state_dicts_known_answer():
    first = {"w": torch.tensor([1.0, 2.0]), "ids": torch.tensor([0, 1])}
    second = {"w": torch.tensor([3.0, 6.0]), "ids": torch.tensor([0, 1])}
    mean = average_state_dicts([first, second])
    assert torch.equal(mean["w"], torch.tensor([2.0, 4.0])) and torch.equal(mean["ids"], first["ids"])
    weighted = average_state_dicts([first, second], weights=[3, 1])
    assert torch.allclose(weighted["w"], torch.tensor([1.5, 3.0]))
    with pytest.raises(ConfigError, match="different weights"):
        average_state_dicts([first, {"w": first["w"]}])
    with pytest.raises(ConfigError, match="shapes"):
        average_state_dicts([first, {"w": torch.zeros(3), "ids": first["ids"]}])
    with pytest.raises(ConfigError, match="buffer"):
        average_state_dicts([first, {"w": first["w"], "ids": torch.tensor([1, 1])}])
    with pytest.raises(ConfigError):
        average_state_dicts([])


def test_average_of_a_model_with_itself_is_the_model(tiny_transformer_dir):
    model = SentenceTransformer.from_transformer(tiny_transformer_dir)
    other = SentenceTransformer.from_transformer(tiny_transformer_dir)
    with torch.no_grad():
        for parameter in other.parameters():
            parameter.add_(1.0)
    state = {name: tensor.clone() for name, tensor in model.state_dict().items()}
    average_into(other, [state, state])
    for name, tensor in other.state_dict().items():
        assert torch.equal(tensor, state[name]), name
