"""The Trainer adapter's checkpoints: Hugging Face's folders and schedule, loadable models, exact resume."""

from __future__ import annotations

import shutil

import pytest
import torch

from tests.conftest import TRAIN_PAIRS

datasets = pytest.importorskip("datasets")

SCORED = {"sentence1": [a for a, _, _ in TRAIN_PAIRS], "sentence2": [b for _, b, _ in TRAIN_PAIRS],
          "score": [s for _, _, s in TRAIN_PAIRS]}


def _model(folder):
    from sentsim import SentenceTransformer

    return SentenceTransformer(str(folder))


def _trainer(model, output_dir, *, train_dataset=None, **options):
    from sentsim import SentenceTransformerTrainer, SentenceTransformerTrainingArguments
    from sentsim.losses import CosineSimilarityLoss

    defaults = {"max_steps": 7, "per_device_train_batch_size": 4, "save_steps": 3, "disable_tqdm": True,
                "dtype": "fp32", "learning_rate": 1e-3}
    args = SentenceTransformerTrainingArguments(output_dir=str(output_dir), **{**defaults, **options})
    return SentenceTransformerTrainer(model=model, args=args, loss=CosineSimilarityLoss(model),
                                      train_dataset=train_dataset or datasets.Dataset.from_dict(SCORED))


def _weights(model):
    return {name: tensor.detach().clone() for name, tensor in model.state_dict().items()}


def _assert_same(first, second):
    assert first.keys() == second.keys() and first
    for name in first:
        assert torch.equal(first[name], second[name]), name


def _names(folder):
    if not folder.exists():
        return []
    return sorted(path.name for path in folder.iterdir() if path.name.startswith(("checkpoint-", ".checkpoint")))


@pytest.fixture(scope="module")
def uninterrupted(tiny_transformer_dir, tmp_path_factory):
    """A 7-step run left alone: its output folder and final weights."""
    output = tmp_path_factory.mktemp("alone") / "out"
    model = _model(tiny_transformer_dir)
    _trainer(model, output).train()
    return output, _weights(model)


def test_checkpoints_are_written_on_hugging_faces_schedule_and_load_as_models(uninterrupted):
    output, final = uninterrupted
    # every save_steps, and at the end of a "steps" run; nothing half-written is left
    assert _names(output) == ["checkpoint-3", "checkpoint-6", "checkpoint-7"]
    last = _model(output / "checkpoint-7")
    _assert_same({name: tensor for name, tensor in last.state_dict().items()}, final)
    earlier = _model(output / "checkpoint-3")
    assert not torch.equal(earlier.encode("a man is playing a flute", convert_to_tensor=True),
                           last.encode("a man is playing a flute", convert_to_tensor=True))
    assert (output / "modules.json").is_file()  # and the final model in output_dir itself, as before
    # the weights are stored once, in the model's files; accelerate's state holds the rest
    state = output / "checkpoint-3" / "training_state"
    assert sorted(path.name for path in state.glob("*.safetensors")) == []
    assert any(state.glob("optimizer*")) and any(state.glob("random_states*"))


def test_resuming_from_the_latest_checkpoint_ends_exactly_like_the_run_left_alone(uninterrupted, tiny_transformer_dir,
                                                                                  tmp_path):
    alone, final = uninterrupted
    output = tmp_path / "out"
    output.mkdir()
    shutil.copytree(alone / "checkpoint-3", output / "checkpoint-3")  # a run killed after step 5 had saved step 3
    model = _model(tiny_transformer_dir)
    result = _trainer(model, output).train(resume_from_checkpoint=True)
    assert result.global_step == 7
    _assert_same(_weights(model), final)
    assert _names(output) == ["checkpoint-3", "checkpoint-6", "checkpoint-7"]


def test_a_checkpoint_in_the_earlier_layout_still_resumes_exactly(uninterrupted, tiny_transformer_dir, tmp_path,
                                                                  monkeypatch):
    # as written before 2026-12-08: accelerate's state held the weights as well, and trainer_state.json the
    # loop's state (no sentsim_state.json)
    from sentsim.training.resume import Checkpoints
    from sentsim.training.trainer_checkpoints import TrainerCheckpoints

    _, final = uninterrupted
    with monkeypatch.context() as patched:
        patched.setattr(TrainerCheckpoints, "save", Checkpoints.save)
        patched.setattr(TrainerCheckpoints, "_write_trainer_state", Checkpoints._write_trainer_state)
        _trainer(_model(tiny_transformer_dir), tmp_path / "old").train()
    old = tmp_path / "old" / "checkpoint-3"
    assert (old / "training_state" / "model.safetensors").is_file() and not (old / "sentsim_state.json").exists()
    # the model files are not what it resumes from: spoil them, and the weights still come from the state
    saved = _model(old)
    before = _weights(saved)
    with torch.no_grad():
        for parameter in saved.parameters():
            parameter.add_(1.0)
    saved.save(old)
    spoilt = _weights(_model(old))
    assert all(not torch.equal(spoilt[name], before[name]) for name, _ in saved.named_parameters())
    output = tmp_path / "out"
    output.mkdir()
    shutil.copytree(old, output / "checkpoint-3")
    model = _model(tiny_transformer_dir)
    _trainer(model, output).train(resume_from_checkpoint=True)
    _assert_same(_weights(model), final)


def test_save_only_model_writes_models_that_load_and_refuses_to_resume_from_them(uninterrupted, tiny_transformer_dir,
                                                                                 tmp_path):
    _, final = uninterrupted
    output = tmp_path / "out"
    model = _model(tiny_transformer_dir)
    _trainer(model, output, save_only_model=True, save_total_limit=2).train()
    _assert_same(_weights(model), final)  # the same run; only what a checkpoint holds differs
    assert _names(output) == ["checkpoint-6", "checkpoint-7"]
    last = output / "checkpoint-7"
    assert not (last / "training_state").exists() and not (last / "best.safetensors").exists()
    assert (last / "trainer_state.json").is_file()
    _assert_same(_weights(_model(last)), final)
    with pytest.raises(ValueError, match=r"saved with save_only_model=True.*SentenceTransformer\(path\)"):
        _trainer(_model(tiny_transformer_dir), output).train(resume_from_checkpoint=True)
    # and a new run over them is refused unless asked, as over any earlier run's checkpoints
    with pytest.raises(ValueError, match="already holds checkpoints"):
        _trainer(_model(tiny_transformer_dir), output).train()


def test_resuming_from_a_named_checkpoint_continues_from_that_one(uninterrupted, tiny_transformer_dir, tmp_path):
    alone, final = uninterrupted
    output = tmp_path / "out"
    shutil.copytree(alone, output)
    shutil.rmtree(output / "checkpoint-6")
    model = _model(tiny_transformer_dir)
    _trainer(model, output).train(resume_from_checkpoint=str(output / "checkpoint-3"))
    _assert_same(_weights(model), final)
    # resuming from the last checkpoint has nothing left to train, and changes nothing
    model = _model(tiny_transformer_dir)
    assert _trainer(model, output).train(resume_from_checkpoint=str(output / "checkpoint-7")).global_step == 7
    _assert_same(_weights(model), final)


def test_save_total_limit_keeps_the_newest(tiny_transformer_dir, tmp_path):
    _trainer(_model(tiny_transformer_dir), tmp_path / "out", save_total_limit=1).train()
    assert _names(tmp_path / "out") == ["checkpoint-7"]


@pytest.mark.parametrize(("options", "expected"), [
    # 10 pairs in batches of 2: 5 steps an epoch; the last, cut short by max_steps, ends at step 7
    ({"save_strategy": "epoch", "per_device_train_batch_size": 2}, ["checkpoint-5", "checkpoint-7"]),
    ({"save_steps": 0.5}, ["checkpoint-4", "checkpoint-7"]),  # a fraction of the run's 7 steps, rounded up
    ({"save_strategy": "no"}, []),
])
def test_other_schedules(tiny_transformer_dir, tmp_path, options, expected):
    assert len(TRAIN_PAIRS) == 10
    _trainer(_model(tiny_transformer_dir), tmp_path / "out", **options).train()
    assert _names(tmp_path / "out") == expected


def test_save_strategy_best_saves_each_new_best(tiny_transformer_dir, tmp_path):
    from sentsim import SentenceTransformerTrainer, SentenceTransformerTrainingArguments
    from sentsim.losses import CosineSimilarityLoss

    model = _model(tiny_transformer_dir)
    args = SentenceTransformerTrainingArguments(
        output_dir=str(tmp_path / "out"), max_steps=6, per_device_train_batch_size=4, eval_strategy="steps",
        eval_steps=2, save_strategy="best", disable_tqdm=True, dtype="fp32", learning_rate=1e-3)
    trainer = SentenceTransformerTrainer(model=model, args=args, loss=CosineSimilarityLoss(model),
                                         train_dataset=datasets.Dataset.from_dict(SCORED),
                                         eval_dataset=datasets.Dataset.from_dict(SCORED))
    trainer.train()
    evaluations = [record for record in trainer.state.log_history if "eval_loss" in record]
    best, bests = None, []
    for record in evaluations:
        if best is None or record["eval_loss"] < best:
            best = record["eval_loss"]
            bests.append(f"checkpoint-{record['step']}")
    assert bests and _names(tmp_path / "out") == sorted(bests)
    with pytest.raises(ValueError, match="save_strategy='best'"):
        _trainer(model, tmp_path / "other", save_strategy="best").train()


def test_a_new_run_refuses_to_overwrite_an_earlier_runs_checkpoints(uninterrupted, tiny_transformer_dir, tmp_path):
    alone, _ = uninterrupted
    output = tmp_path / "out"
    shutil.copytree(alone, output)
    before = {path: path.stat().st_mtime_ns for path in output.rglob("*")}
    with pytest.raises(ValueError, match=r"already holds checkpoints of an earlier run .*resume_from_checkpoint=True"):
        _trainer(_model(tiny_transformer_dir), output).train()
    assert {path: path.stat().st_mtime_ns for path in output.rglob("*")} == before


def test_overwrite_output_dir_replaces_an_earlier_runs_checkpoints(uninterrupted, tiny_transformer_dir, tmp_path):
    alone, _ = uninterrupted
    output = tmp_path / "out"
    shutil.copytree(alone, output)
    (output / "notes.txt").write_text("mine")
    model = _model(tiny_transformer_dir)
    _trainer(model, output, max_steps=4, overwrite_output_dir=True).train()
    # only the new run's folders are left (the old checkpoint-6 and -7 would have mixed with them)
    assert _names(output) == ["checkpoint-3", "checkpoint-4"]
    _assert_same(_model(output / "checkpoint-4").state_dict(), _weights(model))
    assert (output / "notes.txt").read_text() == "mine"


def test_a_folder_named_like_a_checkpoint_is_never_overwritten(uninterrupted, tiny_transformer_dir, tmp_path):
    mine = tmp_path / "out" / "checkpoint-7"
    mine.mkdir(parents=True)
    (mine / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match=r"already holds checkpoints of an earlier run \(checkpoint-7\)"):
        _trainer(_model(tiny_transformer_dir), tmp_path / "out").train()
    with pytest.raises(ValueError, match=r"folders named like checkpoints hold none \(checkpoint-7\)"):
        _trainer(_model(tiny_transformer_dir), tmp_path / "out", overwrite_output_dir=True).train()
    # nor by a run resumed from an earlier checkpoint, which would save its step 7 there
    shutil.copytree(uninterrupted[0] / "checkpoint-3", tmp_path / "out" / "checkpoint-3")
    with pytest.raises(ValueError, match=r"folders named like checkpoints hold none \(checkpoint-7\)"):
        _trainer(_model(tiny_transformer_dir), tmp_path / "out").train(
            resume_from_checkpoint=str(tmp_path / "out" / "checkpoint-3"))
    # resuming from the newest (this folder, as Hugging Face picks it) is refused by the checkpoint's own check
    with pytest.raises(ValueError, match=r"checkpoint-7 is not a whole sentsim checkpoint"):
        _trainer(_model(tiny_transformer_dir), tmp_path / "out").train(resume_from_checkpoint=True)
    assert [path.name for path in mine.iterdir()] == ["notes.txt"]


def test_a_run_resumed_with_save_strategy_no_saves_nothing_more(uninterrupted, tiny_transformer_dir, tmp_path):
    alone, final = uninterrupted
    output = tmp_path / "out"
    output.mkdir()
    shutil.copytree(alone / "checkpoint-3", output / "checkpoint-3")
    model = _model(tiny_transformer_dir)
    _trainer(model, output, save_strategy="no").train(resume_from_checkpoint=True)
    _assert_same(_weights(model), final)
    assert _names(output) == ["checkpoint-3"]


def test_resume_errors_say_what_is_wrong(uninterrupted, tiny_transformer_dir, tmp_path):
    alone, _ = uninterrupted
    model = _model(tiny_transformer_dir)
    with pytest.raises(ValueError, match=r"No valid checkpoint found in output directory"):
        _trainer(model, tmp_path / "empty").train(resume_from_checkpoint=True)
    with pytest.raises(ValueError, match="is not a folder"):
        _trainer(model, tmp_path / "out").train(resume_from_checkpoint=str(tmp_path / "nowhere"))
    # a sentence-transformers checkpoint: a model and Hugging Face's optimizer state, no sentsim state
    theirs = tmp_path / "theirs" / "checkpoint-3"
    model.save(theirs)
    (theirs / "optimizer.pt").write_bytes(b"")
    with pytest.raises(ValueError, match=r"not a whole sentsim checkpoint.*SentenceTransformer\(path\)"):
        _trainer(model, theirs.parent).train(resume_from_checkpoint=True)
    # other batches or other data would not continue the saved run
    output = tmp_path / "copy"
    shutil.copytree(alone, output)
    with pytest.raises(ValueError, match=r"batch_size 4 → 2"):
        _trainer(model, output, per_device_train_batch_size=2).train(resume_from_checkpoint=True)
    # the same pairs per step, but other losses: micro-batches of 2 instead of one batch of 4
    with pytest.raises(ValueError, match=r"accumulation_steps 1 → 2"):
        _trainer(model, output, per_device_train_batch_size=2, gradient_accumulation_steps=2).train(
            resume_from_checkpoint=True)
    fewer = datasets.Dataset.from_dict({name: column[:6] for name, column in SCORED.items()})
    with pytest.raises(ValueError, match=r"train rows \[10\] → \[6\]"):
        _trainer(model, output, train_dataset=fewer).train(resume_from_checkpoint=True)
    (tmp_path / "a-file").write_text("mine")
    with pytest.raises(ValueError, match="is a file, not a folder"):
        _trainer(model, tmp_path / "a-file").train()
    assert (tmp_path / "a-file").read_text() == "mine"
    with pytest.raises(ValueError, match="does not support trial"):
        _trainer(model, output).train(trial={"learning_rate": 1e-4})


def test_a_multi_dataset_run_resumes_exactly(tiny_transformer_dir, tmp_path):
    half = {name: column[:5] for name, column in SCORED.items()}
    rest = {name: column[5:] for name, column in SCORED.items()}
    both = datasets.DatasetDict({"first": datasets.Dataset.from_dict(half), "second": datasets.Dataset.from_dict(rest)})
    alone = _model(tiny_transformer_dir)
    _trainer(alone, tmp_path / "alone", train_dataset=both).train()
    output = tmp_path / "resumed"
    output.mkdir()
    shutil.copytree(tmp_path / "alone" / "checkpoint-3", output / "checkpoint-3")
    resumed = _model(tiny_transformer_dir)
    _trainer(resumed, output, train_dataset=both).train(resume_from_checkpoint=True)
    _assert_same(_weights(resumed), _weights(alone))


def test_fit_writes_checkpoints_to_checkpoint_path_as_sentence_transformers_3_does(tiny_transformer_dir, tmp_path):
    from torch.utils.data import DataLoader

    from sentsim import InputExample, losses

    model = _model(tiny_transformer_dir)
    examples = [InputExample(texts=[a, b], label=score) for a, b, score in TRAIN_PAIRS]
    fit = {"train_objectives": [(DataLoader(examples, batch_size=2), losses.CosineSimilarityLoss(model))],
           "epochs": 1, "warmup_steps": 1, "checkpoint_path": str(tmp_path / "checkpoints"),
           "checkpoint_save_steps": 2, "checkpoint_save_total_limit": 2, "show_progress_bar": False}
    model.fit(**fit)
    # 10 pairs in batches of 2: 5 steps, saved at 2 and 4 and at the end; the newest 2 kept
    assert _names(tmp_path / "checkpoints") == ["checkpoint-4", "checkpoint-5"]
    _assert_same(_model(tmp_path / "checkpoints" / "checkpoint-5").state_dict(), _weights(model))
    from transformers import TrainerState

    saved = TrainerState.load_from_json(str(tmp_path / "checkpoints" / "checkpoint-5" / "trainer_state.json"))
    assert (saved.global_step, saved.save_steps) == (5, 2)  # fit's checkpoint_save_steps, not a default
    with pytest.raises(ValueError, match="already holds checkpoints of an earlier run"):
        model.fit(**fit)
    for steps in (None, 0):  # as in their classic fit: no step interval, no checkpoints
        model.fit(**{**fit, "checkpoint_path": str(tmp_path / f"none-{steps}"), "checkpoint_save_steps": steps})
        assert not (tmp_path / f"none-{steps}").exists()


def test_save_model_writes_the_model_where_hugging_face_would(tiny_transformer_dir, tmp_path):
    model = _model(tiny_transformer_dir)
    trainer = _trainer(model, tmp_path / "out", save_strategy="no")
    trainer.train()
    trainer.save_model()
    trainer.save_model(str(tmp_path / "elsewhere"))
    for folder in (tmp_path / "out", tmp_path / "elsewhere"):
        _assert_same(_model(folder).state_dict(), _weights(model))
    trainer.args.output_dir = None
    with pytest.raises(ValueError, match="save_model needs an output_dir"):
        trainer.save_model()


def test_save_total_limit_keeps_the_best_checkpoint_too_and_the_state_names_it(tiny_transformer_dir, tmp_path):
    from sentsim import SentenceTransformerTrainer, SentenceTransformerTrainingArguments
    from sentsim.losses import CosineSimilarityLoss

    model = _model(tiny_transformer_dir)
    args = SentenceTransformerTrainingArguments(
        output_dir=str(tmp_path / "out"), max_steps=10, per_device_train_batch_size=4, eval_strategy="steps",
        eval_steps=2, save_steps=2, save_total_limit=1, load_best_model_at_end=True, disable_tqdm=True,
        dtype="fp32", learning_rate=3e-2)
    few = datasets.Dataset.from_dict({name: column[:4] for name, column in SCORED.items()})
    trainer = SentenceTransformerTrainer(model=model, args=args, loss=CosineSimilarityLoss(model),
                                         train_dataset=datasets.Dataset.from_dict(SCORED), eval_dataset=few)
    trainer.train()
    losses = {record["step"]: record["eval_loss"] for record in trainer.state.log_history if "eval_loss" in record}
    best = min(losses, key=losses.get)
    assert best != 10  # so the rotation has a best folder to spare
    assert trainer.state.best_metric == pytest.approx(losses[best])
    assert trainer.state.best_model_checkpoint == str(tmp_path / "out" / f"checkpoint-{best}")
    assert _names(tmp_path / "out") == sorted({f"checkpoint-{best}", "checkpoint-10"})
    # the model ends on the best weights, which are that checkpoint's
    _assert_same(_model(trainer.state.best_model_checkpoint).state_dict(), _weights(model))
    # each checkpoint's trainer_state.json reads as Hugging Face's
    from transformers import TrainerState

    saved = TrainerState.load_from_json(str(tmp_path / "out" / "checkpoint-10" / "trainer_state.json"))
    assert (saved.global_step, saved.max_steps, saved.epoch) == (10, 10, pytest.approx(10 / 3))
    assert (saved.save_steps, saved.eval_steps, saved.train_batch_size, saved.num_train_epochs) == (2, 2, 4, 4)
    assert saved.best_global_step == best and saved.best_metric == pytest.approx(losses[best])
    assert saved.best_model_checkpoint == trainer.state.best_model_checkpoint
    # as in Hugging Face's, the last checkpoint is saved before the run's closing entry is logged
    assert saved.log_history == trainer.state.log_history[:-1]
    assert list([entry for entry in saved.log_history if "loss" in entry][-1]) == [
        "loss", "grad_norm", "learning_rate", "epoch", "step", "pairs_per_second"]
    assert list(trainer.state.log_history[-1]) == ["train_runtime", "train_samples_per_second",
                                                   "train_steps_per_second", "total_flos", "train_loss", "epoch",
                                                   "step"]
    at_best = TrainerState.load_from_json(str(tmp_path / "out" / f"checkpoint-{best}" / "trainer_state.json"))
    assert at_best.global_step == best and at_best.best_model_checkpoint == trainer.state.best_model_checkpoint


def test_hugging_faces_example_script_calls_work(tiny_transformer_dir, tmp_path, capsys):
    # train_result = trainer.train(); trainer.log_metrics / save_metrics("train", train_result.metrics);
    # trainer.save_state(), as Hugging Face's example scripts end
    import json

    from transformers import TrainerState

    output = tmp_path / "out"
    trainer = _trainer(_model(tiny_transformer_dir), output, save_strategy="no")
    result = trainer.train()
    metrics = result.metrics
    # sentence-transformers 6.2's five (checked against its Trainer)
    assert {"train_runtime", "train_samples_per_second", "train_steps_per_second", "train_loss",
            "epoch"} <= set(metrics)
    assert metrics["train_loss"] == result.training_loss and metrics["epoch"] == pytest.approx(7 / 3)
    assert metrics["train_runtime"] > 0 and metrics["train_steps_per_second"] > 0
    trainer.log_metrics("train", metrics)
    printed = capsys.readouterr().out
    assert printed.startswith("***** train metrics *****") and "train_loss" in printed
    trainer.save_metrics("train", metrics)
    trainer.save_metrics("eval", {"eval_loss": 0.5})
    assert json.loads((output / "train_results.json").read_text()) == metrics
    assert json.loads((output / "all_results.json").read_text()) == {**metrics, "eval_loss": 0.5}
    trainer.save_state()
    saved = TrainerState.load_from_json(str(output / "trainer_state.json"))
    assert (saved.global_step, saved.max_steps, saved.epoch) == (7, 7, pytest.approx(7 / 3))
    assert saved.log_history == trainer.state.log_history and saved.best_metric is None
    assert not any(output.glob("checkpoint-*"))  # save_strategy="no"
    with pytest.raises(ValueError, match="save_state needs the training arguments' output_dir"):
        _trainer(_model(tiny_transformer_dir), "", save_strategy="no").save_state()
