"""MatryoshkaLoss: the base loss on each leading slice, as sentence-transformers' (tiny and bundled models)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from sentsim.errors import ConfigError
from tests.conftest import TRAIN_PAIRS

A = [a for a, _, _ in TRAIN_PAIRS]
B = [b for _, b, _ in TRAIN_PAIRS]
LABELS = [s for _, _, s in TRAIN_PAIRS]


def _embeddings(rows: int = 6, dim: int = 32) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    return (torch.randn(rows, dim, generator=generator), torch.randn(rows, dim, generator=generator),
            torch.rand(rows, generator=generator))


def test_each_slice_is_renormalised_weighted_and_summed_largest_first():
    from sentsim.losses import CoSENTLoss, CosineSimilarityLoss, MatryoshkaLoss

    a, b, labels = _embeddings()
    loss = MatryoshkaLoss(None, CoSENTLoss(), [8, 32, 16], matryoshka_weights=[0.5, 1, 2])
    assert (loss.matryoshka_dims, loss.matryoshka_weights) == ((32, 16, 8), (1.0, 2.0, 0.5))
    expected = sum(weight * CoSENTLoss()(F.normalize(a[:, :dim], dim=-1), F.normalize(b[:, :dim], dim=-1), labels)
                   for dim, weight in ((32, 1.0), (16, 2.0), (8, 0.5)))
    torch.testing.assert_close(loss(a, b, labels), expected)
    single = MatryoshkaLoss(None, CosineSimilarityLoss(), [32])
    torch.testing.assert_close(single(a, b, labels), CosineSimilarityLoss()(a, b, labels))  # cosine ignores length
    assert single.per_pair and not loss.per_pair and not loss.in_batch_negatives


def test_in_batch_negatives_slice_every_side_and_keep_the_text_ids():
    from sentsim.losses import MatryoshkaLoss, MultipleNegativesRankingLoss

    anchors, positives, _ = _embeddings()
    negatives = torch.randn_like(anchors)
    ids = torch.arange(18).view(3, 6).T
    loss = MatryoshkaLoss(None, MultipleNegativesRankingLoss(), [32, 4])
    assert loss.in_batch_negatives
    expected = sum(MultipleNegativesRankingLoss()(*(F.normalize(x[:, :dim], dim=-1)
                                                    for x in (anchors, positives, negatives)), text_ids=ids)
                   for dim in (32, 4))
    torch.testing.assert_close(loss(anchors, positives, negatives, text_ids=ids), expected)


def test_n_dims_per_step_draws_from_torchs_generator():
    from sentsim.losses import CosineSimilarityLoss, MatryoshkaLoss

    a, b, labels = _embeddings()
    loss = MatryoshkaLoss(None, CosineSimilarityLoss(), [32, 16, 8, 4], n_dims_per_step=2)
    assert not loss.per_pair  # the chunks of one step could draw differently
    values = []
    for _ in range(2):
        torch.manual_seed(7)
        values.append([float(loss(a, b, labels)) for _ in range(5)])
    assert values[0] == values[1] and len(set(values[0])) > 1


@pytest.mark.parametrize(("options", "message"), [
    ({"matryoshka_dims": []}, "at least one dimension"),
    ({"matryoshka_dims": [32, 0]}, "must all be above 0"),
    ({"matryoshka_dims": [32, 16], "matryoshka_weights": [1]}, "1 weights for 2 matryoshka_dims"),
    ({"matryoshka_dims": [64, 32]}, r"go beyond the model's embedding dimension of 32"),
])
def test_bad_dimensions_and_weights_are_refused(tiny_model, options, message):
    from sentsim.losses import CoSENTLoss, MatryoshkaLoss

    with pytest.raises(ConfigError, match=message):
        MatryoshkaLoss(tiny_model, CoSENTLoss(tiny_model), **options)


def test_chunked_training_under_matryoshka_learns_what_whole_batches_learn(tiny_transformer_dir, tmp_path):
    from sentsim import SentenceTransformer
    from sentsim.losses import CosineSimilarityLoss, MatryoshkaLoss
    from sentsim.training import TrainConfig, train

    folder = tmp_path / "no-dropout"
    shutil.copytree(tiny_transformer_dir, folder)
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "hidden_dropout_prob": 0.0,
                                                    "attention_probs_dropout_prob": 0.0}))
    weights = []
    for limit in (None, 8):
        model = SentenceTransformer.from_transformer(folder, pooling="mean")
        loss = MatryoshkaLoss(model, CosineSimilarityLoss(model), [32, 16, 8])
        settings = TrainConfig(batch_size=4, epochs=2, learning_rate=1e-3, dtype="fp32", max_forward_tokens=limit)
        train(model, sentences_a=A, sentences_b=B, labels=LABELS, config=settings, loss=loss, quiet=True)
        weights.append([parameter.detach().clone() for parameter in model.parameters()])
    for chunked, whole in zip(weights[1], weights[0], strict=True):
        torch.testing.assert_close(chunked, whole, rtol=1e-4, atol=1e-5)


def test_the_trainer_trains_under_it_and_the_card_config_names_it(tiny_transformer_dir):
    datasets = pytest.importorskip("datasets")
    from sentsim import SentenceTransformer, SentenceTransformerTrainer, SentenceTransformerTrainingArguments
    from sentsim.losses import CoSENTLoss, MatryoshkaLoss

    model = SentenceTransformer(str(tiny_transformer_dir))
    loss = MatryoshkaLoss(model, CoSENTLoss(model), [32, 16])
    args = SentenceTransformerTrainingArguments(output_dir=None, max_steps=2, per_device_train_batch_size=4,
                                                save_strategy="no", disable_tqdm=True, dtype="fp32")
    data = datasets.Dataset.from_dict({"sentence1": A, "sentence2": B, "score": LABELS})
    assert SentenceTransformerTrainer(model=model, args=args, train_dataset=data, loss=loss).train().global_step == 2
    assert loss.get_config_dict() == {"loss": "CoSENTLoss", "matryoshka_dims": (32, 16),
                                      "matryoshka_weights": (1.0, 1.0), "n_dims_per_step": -1}


@pytest.mark.integration
def test_equal_to_sentence_transformers_matryoshka_loss_on_the_bundled_model(bundled_model_dir: Path):
    st_losses = pytest.importorskip("sentence_transformers.losses")
    st = pytest.importorskip("sentence_transformers")
    from sentsim import SentenceTransformer
    from sentsim.losses import CoSENTLoss, MatryoshkaLoss, MultipleNegativesRankingLoss

    ours, theirs = SentenceTransformer(str(bundled_model_dir)), st.SentenceTransformer(str(bundled_model_dir),
                                                                                       device="cpu")
    ours.eval()
    theirs.eval()
    dims, weights = [384, 128, 32], [1.0, 0.5, 2.0]
    labels = torch.tensor(LABELS)
    with torch.no_grad():
        mine = [ours.encode(texts, convert_to_tensor=True, dtype="fp32") for texts in (A, B)]
        features = [theirs.preprocess(A), theirs.preprocess(B)]
        for their_loss, our_loss, targets in (
                (st_losses.CoSENTLoss(theirs), CoSENTLoss(ours), labels),
                (st_losses.MultipleNegativesRankingLoss(theirs), MultipleNegativesRankingLoss(ours), None)):
            reference = st_losses.MatryoshkaLoss(theirs, their_loss, dims, matryoshka_weights=weights)(
                features, labels if targets is None else targets)
            wrapped = MatryoshkaLoss(ours, our_loss, dims, matryoshka_weights=weights)
            value = wrapped(*mine) if targets is None else wrapped(*mine, targets)
            assert float(value) == pytest.approx(float(reference), abs=1e-5)


# -- the commands: train --matryoshka-dims, evaluate / encode --truncate-dim ----------------------------------
def test_train_matryoshka_dims_then_evaluate_and_encode_shortened(capsys, model_dir, data_dir, tmp_path):
    import numpy as np

    from tests.cli_support import assert_one_line_error, run_cli

    run = tmp_path / "run"
    code, out, err = run_cli(capsys, "train", "--base-model", model_dir, "--data", data_dir / "train.tsv",
                             "--dev-data", data_dir / "dev.tsv", "--test-data", data_dir / "test.tsv", "--epochs",
                             "1", "--batch-size", "4", "--matryoshka-dims", "32,16,8", "--quiet", "--output", run)
    assert code == 0, err
    assert json.loads((run / "config.json").read_text())["matryoshka_dims"] == [32, 16, 8]
    summary = json.loads((run / "summary.json").read_text())
    by_dimension = summary["test_by_dimension"]
    assert list(by_dimension) == ["32", "16", "8"]
    assert by_dimension["32"] == pytest.approx(summary["test"]["spearman_cosine"], abs=1e-3)  # the whole vector
    assert "test Spearman(cosine) by dimensions kept: 32 " in out
    assert "Shortened embeddings" in (run / "report.md").read_text()
    from sentsim.reporting.summary import RunSummary

    assert RunSummary.load(run).test_by_dimension == by_dimension  # read back, as `sentsim report` does
    test = data_dir / "test.tsv"
    figures = {}
    for dims in ((), ("--truncate-dim", "8")):
        code, out, err = run_cli(capsys, "evaluate", run / "model", "--data", test, "--json", "--bootstrap", "0",
                                 "--dtype", "fp32", *dims)
        assert code == 0, err
        figures[dims] = json.loads(out)
    assert figures[()]["truncate_dim"] is None and figures[("--truncate-dim", "8")]["truncate_dim"] == 8
    assert figures[()]["spearman_cosine"] != figures[("--truncate-dim", "8")]["spearman_cosine"]
    texts = tmp_path / "texts.txt"
    texts.write_text("a dog runs\na cat sleeps\n")
    code, out, err = run_cli(capsys, "encode", run / "model", texts, "-o", tmp_path / "rows.npy", "--truncate-dim",
                             "8", "--dtype", "fp32")
    assert code == 0 and "2 × 8 embeddings" in out, err
    assert np.load(tmp_path / "rows.npy").shape == (2, 8)
    code, _, err = run_cli(capsys, "evaluate", run / "model", "--data", test, "--truncate-dim", "33")
    assert_one_line_error(code, err, "--truncate-dim 33 is above the model's embedding dimension, 32")
    code, _, err = run_cli(capsys, "train", "--base-model", model_dir, "--data", data_dir / "train.tsv",
                           "--matryoshka-dims", "32,16,16", "--output", tmp_path / "twice")
    assert code == 2 and "a dimension is given twice" in err
    code, _, err = run_cli(capsys, "train", "--base-model", model_dir, "--data", data_dir / "train.tsv",
                           "--dev-data", data_dir / "dev.tsv", "--matryoshka-dims", "64,32", "--quiet",
                           "--output", tmp_path / "too-wide")
    assert_one_line_error(code, err, "matryoshka_dims [64, 32] go beyond the model's embedding dimension of 32")
    assert not (tmp_path / "too-wide").exists()


def test_both_backends_evaluate_a_model_set_shortened_as_its_encode_gives(encoders):
    from sentsim.cli.common import truncate_model
    from sentsim.data import PairDataset
    from sentsim.data.pairs import ScoredPair
    from sentsim.evaluation.evaluate import evaluate_pairs, spearman_by_dimension

    dataset = PairDataset(pairs=[ScoredPair(a, b, score) for a, b, score in TRAIN_PAIRS], source="pairs")
    for name, model in encoders.items():
        full = evaluate_pairs(model, dataset, dtype="fp32").metrics["spearman_cosine"]
        by_dimension = spearman_by_dimension(model, dataset, dims=[32, 8], dtype="fp32")
        truncate_model(model, 8)
        try:
            assert model.encode(A[:2], dtype="fp32").shape == (2, 8)
            shortened = evaluate_pairs(model, dataset, dtype="fp32").metrics["spearman_cosine"]
            # encoded once at full size whatever the model is set to, then sliced
            assert spearman_by_dimension(model, dataset, dims=[32, 8], dtype="fp32") == by_dimension, name
        finally:
            model.truncate_dim = None
        assert by_dimension[32] == pytest.approx(full, abs=1e-6), name
        assert by_dimension[8] == pytest.approx(shortened, abs=1e-6), name
        assert shortened != full, name
