"""Training: the length-grouped sampler, the loop's guarantees and the classic ``fit`` API."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from sentsim import SentenceTransformer
from sentsim.errors import ConfigError
from sentsim.training import TrainConfig, train
from sentsim.training.batching import LengthGroupedSampler

from .conftest import TRAIN_PAIRS


# -- sampler -----------------------------------------------------------------------------------
def _lengths(n: int = 1000, seed: int = 0) -> list[int]:
    return np.random.default_rng(seed).integers(3, 70, size=n).tolist()


def test_sampler_yields_every_example_exactly_once():
    lengths = _lengths(1003)
    sampler = LengthGroupedSampler(lengths, batch_size=16, seed=1)
    batches = list(sampler)
    flat = [index for batch in batches for index in batch]
    assert sorted(flat) == list(range(1003))
    assert len(batches) == len(sampler) == 63
    assert sum(len(batch) < 16 for batch in batches) == 1


def test_sampler_groups_by_length():
    lengths = _lengths(4096)
    grouped = list(LengthGroupedSampler(lengths, batch_size=16, seed=0))
    array = np.asarray(lengths)
    padded = sum(len(batch) * array[batch].max() for batch in grouped)
    shuffled = np.random.default_rng(0).permutation(len(lengths)).reshape(-1, 16)
    padded_shuffled = sum(16 * array[batch].max() for batch in shuffled)
    assert padded / array.sum() < 1.1 < padded_shuffled / array.sum()
    spread = np.mean([array[batch].max() - array[batch].min() for batch in grouped])
    assert spread < 3


def test_sampler_is_seeded_and_changes_per_epoch():
    lengths = _lengths()
    first = list(LengthGroupedSampler(lengths, batch_size=8, seed=7))
    assert first == list(LengthGroupedSampler(lengths, batch_size=8, seed=7))
    assert first != list(LengthGroupedSampler(lengths, batch_size=8, seed=8))
    sampler = LengthGroupedSampler(lengths, batch_size=8, seed=7)
    sampler.set_epoch(1)
    assert list(sampler) != first


def test_sampler_drop_last_and_bad_options():
    assert all(len(batch) == 16 for batch in LengthGroupedSampler(_lengths(100), batch_size=16, drop_last=True))
    with pytest.raises(ConfigError):
        LengthGroupedSampler([1, 2], batch_size=0)


def test_train_config_rejects_nonsense():
    with pytest.raises(ConfigError, match="learning_rate"):
        TrainConfig(learning_rate=0)
    with pytest.raises(ConfigError, match="epochs"):
        TrainConfig(epochs=0)
    assert TrainConfig(warmup_ratio=0.1).warmup_for(360) == 36
    assert TrainConfig(warmup_steps=100).warmup_for(50) == 50


# -- the loop -----------------------------------------------------------------------------------
def _train(model: SentenceTransformer, **options) -> object:
    config = TrainConfig(**{"batch_size": 4, "epochs": 2, "learning_rate": 1e-3, "log_every": 1,
                            "dtype": "fp32", **options})
    a, b, labels = zip(*TRAIN_PAIRS, strict=True)
    return train(model, sentences_a=a, sentences_b=b, labels=labels, config=config, quiet=True)


def _weights(model: SentenceTransformer) -> torch.Tensor:
    return torch.cat([parameter.detach().flatten() for parameter in model.parameters()])


def test_training_changes_weights_and_lowers_loss(tiny_transformer_dir):
    model = SentenceTransformer.from_transformer(tiny_transformer_dir)
    before = _weights(model).clone()
    result = _train(model, seed=1)
    assert not torch.equal(before, _weights(model))
    losses = [record["loss"] for record in result.records if record["kind"] == "train"]
    assert result.steps == 6 and len(losses) == 6
    assert all(np.isfinite(losses))
    assert result.train_seconds > 0 and result.pairs_per_second > 0


@pytest.mark.parametrize("max_grad_norm", [1e6, 1e-4])  # 1e-4 clips every step, 1e6 never does
def test_gradient_clipping_gives_accelerates_weights_bit_for_bit(tiny_transformer_dir, monkeypatch, max_grad_norm):
    """sentsim's clip skips the multiply when nothing is clipped; the trained weights must not move by a bit."""
    from sentsim.training import loop_run

    def accelerates(model, accelerator, max_norm):
        return accelerator.clip_grad_norm_(model.parameters(), max_norm)

    runs, norms = [], []
    for clip in (loop_run.clip_gradients, accelerates):
        def recorded(model, accelerator, max_norm, clip=clip):
            norms.append(float(clip(model, accelerator, max_norm)))
            return norms[-1]

        monkeypatch.setattr(loop_run, "clip_gradients", recorded)
        model = SentenceTransformer.from_transformer(tiny_transformer_dir)
        _train(model, seed=5, max_grad_norm=max_grad_norm)
        runs.append(_weights(model))
    assert torch.equal(runs[0], runs[1])
    assert norms[: len(norms) // 2] == norms[len(norms) // 2 :]
    assert (min(norms) > max_grad_norm) if max_grad_norm < 1 else (max(norms) < max_grad_norm)


def test_same_seed_same_weights_other_seed_other_weights(tiny_transformer_dir):
    runs = []
    for seed in (3, 3, 4):
        model = SentenceTransformer.from_transformer(tiny_transformer_dir)
        _train(model, seed=seed)
        runs.append(_weights(model))
    assert torch.equal(runs[0], runs[1])
    assert not torch.equal(runs[0], runs[2])


def test_best_checkpoint_is_restored_and_patience_stops(tiny_transformer_dir):
    model = SentenceTransformer.from_transformer(tiny_transformer_dir)
    scores = iter([50.0, 60.0, 55.0, 54.0, 53.0])
    snapshots = {}

    def evaluator(current: SentenceTransformer) -> dict[str, float]:
        score = next(scores)
        snapshots[score] = _weights(current).clone()
        return {"spearman_cosine": score}

    config = TrainConfig(batch_size=4, epochs=5, learning_rate=1e-3, dtype="fp32", patience=2,
                         evaluation_steps=0)
    a, b, labels = zip(*TRAIN_PAIRS, strict=True)
    result = train(model, sentences_a=a, sentences_b=b, labels=labels, config=config, evaluator=evaluator,
                   quiet=True)
    assert result.best_score == 60.0 and result.best_step == 3
    assert result.stopped_early and result.steps == 9  # epochs 1, 2, 3; patience ran out after epoch 3
    assert torch.equal(_weights(model), snapshots[60.0])
    evals = [record for record in result.records if record["kind"] == "eval"]
    assert [record["step"] for record in evals] == [0, 3, 6, 9]


@pytest.mark.parametrize("loss", ["cosent", "angle", "cosine+cosent"])
def test_every_loss_trains(tiny_transformer_dir, loss):
    model = SentenceTransformer.from_transformer(tiny_transformer_dir)
    result = _train(model, loss=loss, seed=0)
    assert all(np.isfinite(record["loss"]) for record in result.records if record["kind"] == "train")


def test_bf16_training_leaves_fp32_weights_and_fp32_evaluation(tiny_transformer_dir):
    model = SentenceTransformer.from_transformer(tiny_transformer_dir)
    _train(model, seed=0, dtype="bf16")
    assert all(parameter.dtype == torch.float32 for parameter in model.parameters())
    exact = model.encode(["a dog is running"], dtype="fp32")
    assert exact.dtype == np.float32


# -- the classic API, as written in the original sentence-transformers write-up -------------------
def test_classic_fit_snippet_runs_with_only_the_import_changed(tiny_transformer_dir, tmp_path: Path):
    from torch.utils.data import DataLoader

    from sentsim import InputExample, SentencesDataset, SentenceTransformer, losses
    from sentsim.evaluation.evaluate import EmbeddingSimilarityEvaluator

    s1, s2, scores = (list(column) for column in zip(*TRAIN_PAIRS, strict=True))
    # --- the snippet from the write-up, unchanged but for the imports above ---
    model = SentenceTransformer(str(tiny_transformer_dir))
    train_examples = [InputExample(texts=["My first sentence", "My second sentence"], label=0.8),
                      InputExample(texts=["Another pair", "Unrelated sentence"], label=0.3)]
    train_dataset = SentencesDataset(train_examples, model)
    train_dataloader = DataLoader(train_dataset, shuffle=True, batch_size=16)
    train_loss = losses.CosineSimilarityLoss(model)
    model.fit(train_objectives=[(train_dataloader, train_loss)], epochs=1, warmup_steps=100,
              evaluator=EmbeddingSimilarityEvaluator(s1, s2, scores), output_path=str(tmp_path / "out/"))
    # ---
    rows = (tmp_path / "out" / "eval" / "similarity_evaluation_results.csv").read_text().splitlines()
    assert rows[0].startswith("epoch,steps,cosine_pearson") and len(rows) == 2  # one epoch, its row; none before
    assert rows[1].startswith("1.0,1,")
    saved = SentenceTransformer(tmp_path / "out")
    np.testing.assert_allclose(saved.encode(s1, dtype="fp32"), model.encode(s1, dtype="fp32"), atol=1e-6)


def test_fit_with_an_evaluator_keeps_the_trained_weights_as_sentence_transformers_does(tiny_model, tmp_path: Path):
    """Their fit never counts the untrained model as the best: even when training scores worse, the model in
    memory ends on its last weights and output_path holds the best model training produced."""
    from torch.utils.data import DataLoader

    from sentsim import InputExample, losses

    scores = iter([0.9, 0.2, 0.5, 0.1])  # the untrained model "scores" best; then epoch 1, 2, 3

    class Falling:
        primary_metric = "score"

        def __call__(self, model):
            return {"score": next(scores)}

    before = {name: value.clone() for name, value in tiny_model.state_dict().items()}
    examples = [InputExample(texts=[a, b], label=score) for a, b, score in TRAIN_PAIRS]
    saved_at = []
    original_save = type(tiny_model).save

    def save(self, path, *args, **kwargs):
        saved_at.append({name: value.clone() for name, value in self.state_dict().items()})
        return original_save(self, path, *args, **kwargs)

    type(tiny_model).save = save
    try:
        tiny_model.fit(train_objectives=[(DataLoader(examples, batch_size=4), losses.CosineSimilarityLoss(tiny_model))],
                       epochs=3, warmup_steps=0, evaluator=Falling(), output_path=str(tmp_path / "out"),
                       show_progress_bar=False)
    finally:
        type(tiny_model).save = original_save
    after = tiny_model.state_dict()
    assert any(not torch.equal(before[name], after[name]) for name in before)  # not rolled back to the start
    assert len(saved_at) == 2  # epoch 1 (0.2, the first trained score) and epoch 2 (0.5); not epoch 3 (0.1)
    assert any(not torch.equal(before[name], saved_at[-1][name]) for name in before)
    assert (tmp_path / "out" / "modules.json").is_file()


def test_fit_rejects_what_it_cannot_train(tiny_model):
    from sentsim import losses

    with pytest.raises(ConfigError, match="InputExample"):
        tiny_model.fit(train_objectives=[([("a", "b")], losses.CosineSimilarityLoss())])


def test_sentence_transformers_is_never_imported(tiny_transformer_dir, tmp_path: Path):
    script = textwrap.dedent(f"""
        import sys
        import sentsim
        from sentsim import SentenceTransformer
        from sentsim.training import TrainConfig, train
        model = SentenceTransformer.from_transformer({str(tiny_transformer_dir)!r})
        train(model, sentences_a=["a dog", "a cat"], sentences_b=["a dog runs", "a plane"], labels=[0.9, 0.1],
              config=TrainConfig(batch_size=2, dtype="fp32"), quiet=True)
        model.encode(["a dog"])
        model.save({str(tmp_path / "m")!r})
        SentenceTransformer({str(tmp_path / "m")!r}).encode(["a cat"])
        SentenceTransformer("all-MiniLM-L6-v2")
        leaked = sorted(name for name in sys.modules if name.startswith(("sentence_transformers", "gt_all")))
        print("LEAKED", leaked)
    """)
    output = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, check=True)
    assert "LEAKED []" in output.stdout


@pytest.mark.parametrize(("options", "named"), [
    ({"learning_rate": float("inf")}, "--lr"), ({"max_grad_norm": -1.0}, "--max-grad-norm"),
    ({"max_grad_norm": float("nan")}, "--max-grad-norm"), ({"seed": -1}, "--seed"), ({"seed": 2**32}, "--seed"),
])
def test_train_config_refuses_values_that_would_train_to_nonsense(options, named):
    """Gradient ascent (a negative clip), NaN losses (nan or inf) and seeds numpy refuses, said up front."""
    from sentsim.training import TrainConfig

    with pytest.raises(ConfigError, match=named):
        TrainConfig(**options)
    assert TrainConfig(max_grad_norm=0.0).max_grad_norm == 0.0  # 0 turns clipping off, as in transformers
