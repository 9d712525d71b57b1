"""The Trainer's ``state.log_history`` in Hugging Face's shape, and ``eval_on_start`` (tiny model)."""

from __future__ import annotations

import pytest
import torch

from tests.conftest import TRAIN_PAIRS, is_logged

datasets = pytest.importorskip("datasets")

SCORED = {"sentence1": [a for a, _, _ in TRAIN_PAIRS], "sentence2": [b for _, b, _ in TRAIN_PAIRS],
          "score": [s for _, _, s in TRAIN_PAIRS]}
TRAIN_KEYS = ["loss", "grad_norm", "learning_rate", "epoch", "step", "pairs_per_second"]
CLOSING_KEYS = ["train_runtime", "train_samples_per_second", "train_steps_per_second", "total_flos", "train_loss",
                "epoch", "step"]


def _trainer(folder, output_dir=None, *, eval_dataset=True, **options):
    from sentsim import SentenceTransformer, SentenceTransformerTrainer, SentenceTransformerTrainingArguments
    from sentsim.losses import CosineSimilarityLoss

    model = SentenceTransformer(str(folder))
    defaults = {"max_steps": 6, "per_device_train_batch_size": 4, "eval_strategy": "steps", "eval_steps": 2,
                "logging_steps": 2, "save_strategy": "no", "disable_tqdm": True, "dtype": "fp32",
                "learning_rate": 1e-3}
    args = SentenceTransformerTrainingArguments(output_dir=None if output_dir is None else str(output_dir),
                                                **{**defaults, **options})
    scored = datasets.Dataset.from_dict(SCORED)
    return SentenceTransformerTrainer(model=model, args=args, loss=CosineSimilarityLoss(model), train_dataset=scored,
                                      eval_dataset=scored if eval_dataset else None)


def _untimed(entry: dict) -> dict:
    """An entry without the figures that depend on the clock."""
    return {key: value for key, value in entry.items()
            if key != "pairs_per_second" and not key.endswith(("_runtime", "_samples_per_second", "_steps_per_second"))}


def test_log_history_entries_have_hugging_faces_keys_and_its_model_card_parser_reads_them(tiny_transformer_dir):
    from transformers.modelcard import parse_log_history

    trainer = _trainer(tiny_transformer_dir)
    trainer.train()
    history = trainer.state.log_history
    assert [list(entry) for entry in history if is_logged(entry, "train")] == [TRAIN_KEYS] * 3
    evaluations = [entry for entry in history if is_logged(entry, "eval")]
    assert [entry["step"] for entry in evaluations] == [2, 4, 6]
    assert [entry["epoch"] for entry in evaluations] == [2 / 3, 4 / 3, 2.0]  # exact, as theirs (3 steps/epoch)
    assert all(list(entry)[-5:] == ["eval_runtime", "eval_samples_per_second", "eval_steps_per_second", "epoch",
                                    "step"] and "kind" not in entry and "split" not in entry for entry in evaluations)
    assert list(history[-1]) == CLOSING_KEYS and history[-1]["step"] == 6
    assert all(entry["grad_norm"] > 0 and entry["learning_rate"] >= 0 for entry in history if "loss" in entry)
    closing, lines, final = parse_log_history(history)
    assert closing == history[-1]
    assert [line["Step"] for line in lines] == [2, 4, 6]
    assert [line["Validation Loss"] for line in lines] == [entry["eval_loss"] for entry in evaluations]
    assert [line["Training Loss"] for line in lines] == [entry["loss"] for entry in history if "loss" in entry]
    assert final["Loss"] == evaluations[-1]["eval_loss"]
    metrics = trainer.evaluate()
    assert history[-1] == {**metrics, "epoch": trainer.state.epoch, "step": 6}
    without_clipping = _trainer(tiny_transformer_dir, max_grad_norm=0.0)
    without_clipping.train()  # Hugging Face logs grad_norm only where it clips
    assert all("grad_norm" not in entry for entry in without_clipping.state.log_history)


def test_eval_on_start_logs_the_untrained_model_without_ranking_it_or_changing_the_run(tiny_transformer_dir):
    from sentsim.evaluation import EmbeddingSimilarityEvaluator

    plain = _trainer(tiny_transformer_dir)
    plain.train()
    first = _trainer(tiny_transformer_dir, eval_on_start=True)
    untrained = EmbeddingSimilarityEvaluator(SCORED["sentence1"], SCORED["sentence2"], SCORED["score"])(first.model)
    first.train()
    history = first.state.log_history
    assert history[0]["step"] == 0 and history[0]["epoch"] == 0 and "eval_loss" in history[0]
    assert history[0]["eval_spearman_cosine"] == pytest.approx(untrained["spearman_cosine"], abs=1e-6)
    assert [_untimed(entry) for entry in history[1:]] == [_untimed(entry) for entry in plain.state.log_history]
    assert first.state.best_global_step in (2, 4, 6)  # only evaluations made while training are ranked
    for ours, theirs in zip(first.model.state_dict().values(), plain.model.state_dict().values(), strict=True):
        assert torch.equal(ours, theirs)


def test_eval_on_start_alone_ranks_nothing_and_ends_on_the_trained_weights(tiny_transformer_dir):
    trainer = _trainer(tiny_transformer_dir, eval_strategy="no", eval_on_start=True)
    before = {name: tensor.clone() for name, tensor in trainer.model.state_dict().items()}
    trainer.train()
    evaluations = [entry for entry in trainer.state.log_history if is_logged(entry, "eval")]
    assert [entry["step"] for entry in evaluations] == [0]
    assert trainer.state.best_metric is None and trainer.state.best_global_step is None
    assert any(not torch.equal(before[name], tensor) for name, tensor in trainer.model.state_dict().items())


def test_eval_on_start_with_nothing_to_evaluate_is_refused(tiny_transformer_dir):
    from sentsim.errors import ConfigError

    trainer = _trainer(tiny_transformer_dir, eval_dataset=False, eval_strategy="no", eval_on_start=True)
    with pytest.raises(ConfigError, match="eval_on_start=True evaluates before training: pass an eval_dataset"):
        trainer.train()


def test_a_resumed_run_with_eval_on_start_evaluates_where_it_starts_again(tiny_transformer_dir, tmp_path):
    whole = _trainer(tiny_transformer_dir, tmp_path / "whole", eval_on_start=True, save_strategy="steps",
                     save_steps=3)
    whole.train()
    resumed = _trainer(tiny_transformer_dir, tmp_path / "whole", eval_on_start=True, save_strategy="steps",
                       save_steps=3)
    resumed.train(resume_from_checkpoint=str(tmp_path / "whole" / "checkpoint-3"))
    steps = [entry["step"] for entry in resumed.state.log_history if is_logged(entry, "eval")]
    assert steps == [0, 2, 3, 4, 6]  # as Hugging Face's: the restored history, then step 3 on resuming
    for ours, theirs in zip(resumed.model.state_dict().values(), whole.model.state_dict().values(), strict=True):
        assert torch.equal(ours, theirs)


def test_logged_losses_cover_every_step_once_across_epochs_and_train_loss_is_their_mean(tiny_transformer_dir):
    # 10 pairs in batches of 4: 3 steps per epoch, so a log every 2 steps spans an epoch's end (steps 3-4)
    every = _trainer(tiny_transformer_dir, eval_strategy="no", logging_steps=1, eval_dataset=False)
    every.train()
    losses = {entry["step"]: entry["loss"] for entry in every.state.log_history if "loss" in entry}
    assert sorted(losses) == [1, 2, 3, 4, 5, 6]
    pairs = _trainer(tiny_transformer_dir, eval_strategy="no", logging_steps=2, eval_dataset=False)
    output = pairs.train()
    logged = {entry["step"]: entry["loss"] for entry in pairs.state.log_history if "loss" in entry}
    assert logged == pytest.approx({step: (losses[step - 1] + losses[step]) / 2 for step in (2, 4, 6)}, abs=1e-6)
    assert output.training_loss == pytest.approx(sum(losses.values()) / 6, abs=1e-6)
    assert pairs.state.log_history[-1]["train_loss"] == output.training_loss


def test_logging_first_step_logs_step_1_alone_then_every_logging_steps(tiny_transformer_dir):
    every = _trainer(tiny_transformer_dir, eval_strategy="no", logging_steps=1, eval_dataset=False)
    every.train()
    losses = {entry["step"]: entry["loss"] for entry in every.state.log_history if "loss" in entry}
    first = _trainer(tiny_transformer_dir, eval_strategy="no", logging_steps=2, logging_first_step=True,
                     eval_dataset=False)
    first.train()
    logged = {entry["step"]: entry["loss"] for entry in first.state.log_history if "loss" in entry}
    assert logged == pytest.approx({1: losses[1], 2: losses[2], 4: (losses[3] + losses[4]) / 2,
                                    6: (losses[5] + losses[6]) / 2}, abs=1e-6)


def test_logging_strategy_epoch_logs_each_epoch_and_no_logs_no_steps_with_the_same_train_loss(tiny_transformer_dir):
    from sentsim.errors import ConfigError

    every = _trainer(tiny_transformer_dir, eval_strategy="no", logging_steps=1, eval_dataset=False)
    every.train()
    losses = {entry["step"]: entry["loss"] for entry in every.state.log_history if "loss" in entry}
    by_epoch = _trainer(tiny_transformer_dir, eval_strategy="no", logging_strategy="epoch", eval_dataset=False)
    by_epoch.train()
    logged = {entry["step"]: entry["loss"] for entry in by_epoch.state.log_history if "loss" in entry}
    assert logged == pytest.approx({3: sum(losses[s] for s in (1, 2, 3)) / 3, 6: sum(losses[s] for s in (4, 5, 6)) / 3},
                                   abs=1e-6)
    silent = _trainer(tiny_transformer_dir, eval_strategy="no", logging_strategy="no", eval_dataset=False)
    output = silent.train()
    assert [list(entry) for entry in silent.state.log_history] == [CLOSING_KEYS]  # only the closing entry
    assert output.training_loss == pytest.approx(sum(losses.values()) / 6, abs=1e-6)
    with pytest.raises(ConfigError, match="logging_strategy must be one of steps, epoch, no, not 'sometimes'"):
        _trainer(tiny_transformer_dir, logging_strategy="sometimes")
