"""The Trainer adapter against sentence-transformers 6.2's behaviour: eval loss, evaluate(), refusals, BatchSamplers."""

from __future__ import annotations

import logging
import subprocess
import sys

import pytest
import torch

from tests.conftest import TRAIN_PAIRS, is_logged
from tests.trainer_support import trainer_arguments as _args

datasets = pytest.importorskip("datasets")

S1 = [a for a, _, _ in TRAIN_PAIRS]
S2 = [b for _, b, _ in TRAIN_PAIRS]
SCORES = [s for _, _, s in TRAIN_PAIRS]
PAIRS = {"anchor": S1[:6], "positive": S2[:6]}


@pytest.fixture
def model(tiny_transformer_dir):
    from sentsim import SentenceTransformer

    return SentenceTransformer(str(tiny_transformer_dir))


def test_an_unscored_eval_dataset_gets_the_training_loss_as_eval_loss(model):
    from sentsim import SentenceTransformerTrainer
    from sentsim.losses import MultipleNegativesRankingLoss

    loss = MultipleNegativesRankingLoss(model)
    trainer = SentenceTransformerTrainer(model=model, args=_args(eval_strategy="steps", eval_steps=1),
                                         train_dataset=datasets.Dataset.from_dict(PAIRS),
                                         eval_dataset=datasets.Dataset.from_dict(PAIRS), loss=loss)
    trainer.train()
    evaluations = [record for record in trainer.state.log_history if is_logged(record, "eval")]
    assert evaluations and all(set(record) >= {"eval_loss"} for record in evaluations)
    assert not any("spearman" in key or "negative_loss" in key for record in evaluations for key in record)
    model.train()
    metrics = trainer.evaluate()
    assert model.training and all(parameter.grad is None for parameter in model.parameters())
    # one eval batch holds every row, so the batch order cannot matter: the loss over the embeddings
    with torch.no_grad():
        anchors = model.encode(PAIRS["anchor"], convert_to_tensor=True, dtype="fp32")
        positives = model.encode(PAIRS["positive"], convert_to_tensor=True, dtype="fp32")
        expected = float(loss(anchors, positives))
    assert metrics["eval_loss"] == pytest.approx(expected, abs=1e-4)
    assert {"eval_runtime", "eval_samples_per_second", "eval_steps_per_second"} <= set(metrics)
    assert trainer.state.log_history[-1]["eval_loss"] == metrics["eval_loss"]


def test_a_scored_eval_dataset_reports_eval_loss_beside_the_similarity_metrics(model):
    from sentsim import SentenceTransformerTrainer, losses

    scored = datasets.Dataset.from_dict({"sentence1": S1, "sentence2": S2, "score": SCORES})
    loss = losses.CoSENTLoss(model)
    args = _args(eval_strategy="steps", eval_steps=1, metric_for_best_model="spearman_cosine")
    trainer = SentenceTransformerTrainer(model=model, args=args, train_dataset=scored, eval_dataset=scored, loss=loss)
    output = trainer.train()
    assert {"eval_loss", "eval_spearman_cosine"} <= set(output.metrics)
    scores = [record["eval_spearman_cosine"] for record in trainer.state.log_history if is_logged(record, "eval")]
    assert trainer.state.best_metric == max(scores)  # ranked by metric_for_best_model, "eval_" optional
    metrics = trainer.evaluate()
    with torch.no_grad():
        expected = float(loss(model.encode(S1, convert_to_tensor=True, dtype="fp32"),
                              model.encode(S2, convert_to_tensor=True, dtype="fp32"), torch.tensor(SCORES)))
    assert metrics["eval_loss"] == pytest.approx(expected, abs=1e-4)
    assert "eval_spearman_cosine" in metrics and "eval_eval_spearman_cosine" not in metrics


def test_evaluate_takes_sentence_transformers_arguments(model):
    from sentsim import SentenceTransformerTrainer
    from sentsim.errors import ConfigError
    from sentsim.losses import MultipleNegativesRankingLoss

    trainer = SentenceTransformerTrainer(model=model, args=_args(), train_dataset=PAIRS,
                                         loss=MultipleNegativesRankingLoss(model))
    with pytest.raises(ValueError, match="needs an eval_dataset"):
        trainer.evaluate()
    other = datasets.Dataset.from_dict({"anchor": S1[6:], "positive": S2[6:], "negative": S2[:4]})
    metrics = trainer.evaluate(eval_dataset=other, ignore_keys=["hidden_states"], metric_key_prefix="test")
    assert metrics["test_loss"] > 0 and not any(key.startswith("eval_") for key in metrics)
    with pytest.raises(ConfigError, match=r"names no eval dataset of the trainer \(its named ones: none\)"):
        trainer.evaluate(eval_dataset="nli")


def test_load_best_model_at_end_ranks_by_the_lowest_eval_loss(model):
    from sentsim import SentenceTransformerTrainer
    from sentsim.errors import ConfigError
    from sentsim.losses import MultipleNegativesRankingLoss

    args = _args(max_steps=2, per_device_train_batch_size=2, eval_strategy="steps", eval_steps=1,
                 learning_rate=1e-2, load_best_model_at_end=True, metric_for_best_model="eval_loss",
                 greater_is_better=False)
    trainer = SentenceTransformerTrainer(model=model, args=args, train_dataset=PAIRS, eval_dataset=PAIRS,
                                         loss=MultipleNegativesRankingLoss(model))
    trainer.train()
    losses = [record["eval_loss"] for record in trainer.state.log_history if is_logged(record, "eval")]
    assert len(losses) == 2 and trainer.state.best_metric == pytest.approx(min(losses))
    # as theirs, the untrained model is never evaluated, so it can never be the model kept
    assert [record["step"] for record in trainer.state.log_history if is_logged(record, "eval")] == [1, 2]
    assert trainer.evaluate()["eval_loss"] == pytest.approx(min(losses), abs=1e-5)
    with pytest.raises(ConfigError, match="greater_is_better=True"):
        _args(metric_for_best_model="loss", greater_is_better=True)


def test_without_metric_for_best_model_the_eval_loss_ranks_as_in_sentence_transformers(model):
    from sentsim import SentenceTransformerTrainer, losses
    from sentsim.evaluation import EmbeddingSimilarityEvaluator

    scored = datasets.Dataset.from_dict({"sentence1": S1, "sentence2": S2, "score": SCORES})
    evaluator = EmbeddingSimilarityEvaluator(S1, S2, SCORES, name="sts-dev")
    args = _args(max_steps=4, per_device_train_batch_size=2, eval_strategy="steps", eval_steps=1,
                 learning_rate=1e-2, load_best_model_at_end=True)
    trainer = SentenceTransformerTrainer(model=model, args=args, train_dataset=scored, eval_dataset=scored,
                                         loss=losses.CoSENTLoss(model), evaluator=evaluator)
    trainer.train()
    evaluations = [record for record in trainer.state.log_history if is_logged(record, "eval")]
    assert len(evaluations) == 4 and all("eval_sts-dev_spearman_cosine" in record for record in evaluations)
    losses_seen = [record["eval_loss"] for record in evaluations]
    spearmans = [record["eval_sts-dev_spearman_cosine"] for record in evaluations]
    assert losses_seen.index(min(losses_seen)) != spearmans.index(max(spearmans))  # the two rankings differ here
    assert trainer.state.best_metric == pytest.approx(min(losses_seen))
    assert trainer.evaluate()["eval_loss"] == pytest.approx(min(losses_seen), abs=1e-5)  # that model was kept
    # with only an evaluator (no eval loss to rank by) its primary metric ranks, where theirs would fail
    only = SentenceTransformerTrainer(model=model, args=args, train_dataset=scored, evaluator=evaluator,
                                      loss=losses.CoSENTLoss(model))
    only.train()
    spearmans = [record["eval_sts-dev_spearman_cosine"] for record in only.state.log_history
                 if is_logged(record, "eval")]
    assert only.state.best_metric == max(spearmans)


def test_an_eval_strategy_with_nothing_to_evaluate_is_refused_at_construction(model):
    from sentsim import SentenceTransformerTrainer

    for strategy in ("steps", "epoch"):
        with pytest.raises(ValueError, match=f"eval_strategy` to {strategy}, .*`eval_dataset` or an `evaluator`"):
            SentenceTransformerTrainer(model=model, args=_args(eval_strategy=strategy), train_dataset=PAIRS)
    SentenceTransformerTrainer(model=model, args=_args(eval_strategy="no"), train_dataset=PAIRS)


def test_reserved_columns_and_a_missing_train_dataset_fail_as_theirs(model, tmp_path):
    from sentsim import SentenceTransformerTrainer

    for column in ("return_loss", "dataset_name"):
        reserved = datasets.Dataset.from_dict({"sentence1": S1, column: S2, "score": SCORES})
        with pytest.raises(ValueError, match=rf"invalid in your train dataset: \['{column}'\]\. Avoid using"):
            SentenceTransformerTrainer(model=model, train_dataset=reserved)
        with pytest.raises(ValueError, match=rf"invalid in your eval dataset: \['{column}'\]"):
            SentenceTransformerTrainer(model=model, train_dataset=PAIRS, eval_dataset=reserved)
    scored = {"sentence1": S1, "sentence2": S2, "score": SCORES}
    trainer = SentenceTransformerTrainer(model=model, args=_args(), eval_dataset=scored)  # evaluation only
    assert "eval_spearman_cosine" in trainer.evaluate()
    with pytest.raises(ValueError, match="train\\(\\) needs a train_dataset"):
        trainer.train()


def test_a_model_given_to_a_trainer_gets_a_new_card(model, tmp_path):
    from sentsim import SentenceTransformer, SentenceTransformerTrainer

    saved = model.save(tmp_path / "saved")
    (saved / "README.md").write_text("# Someone's card\n", encoding="utf-8")
    loaded = SentenceTransformer(saved)
    assert (loaded.save(tmp_path / "kept") / "README.md").read_text(encoding="utf-8") == "# Someone's card\n"
    SentenceTransformerTrainer(model=loaded, args=_args(), train_dataset=PAIRS)
    assert "Someone's card" not in (loaded.save(tmp_path / "new") / "README.md").read_text(encoding="utf-8")


def test_prompts_go_before_the_texts_of_their_columns(model, monkeypatch, caplog):
    from sentsim import SentenceTransformerTrainer, losses
    from sentsim.errors import ConfigError
    from sentsim.training import trainer as trainer_module

    scored = {"sentence1": S1, "sentence2": S2, "score": SCORES}
    seen = {}
    real_train = trainer_module.train

    def spy(model, **options):
        seen.update(options)
        return real_train(model, **options)

    monkeypatch.setattr(trainer_module, "train", spy)
    args = _args(prompts={"sentence1": "query: "}, eval_strategy="steps", eval_steps=1)
    trainer = SentenceTransformerTrainer(model=model, args=args, train_dataset=scored, eval_dataset=scored,
                                         loss=losses.CoSENTLoss(model))
    trainer.train()
    assert seen["sentences_a"] == ["query: " + text for text in S1] and seen["sentences_b"] == S2
    loss = losses.CoSENTLoss(model)
    with torch.no_grad():  # the eval loss is over the prompted texts too
        expected = float(loss(model.encode(["query: " + text for text in S1], convert_to_tensor=True, dtype="fp32"),
                              model.encode(S2, convert_to_tensor=True, dtype="fp32"), torch.tensor(SCORES)))
    assert trainer.evaluate()["eval_loss"] == pytest.approx(expected, abs=1e-4)
    SentenceTransformerTrainer(model=model, args=_args(prompts="doc: "), train_dataset=scored).train()
    assert seen["sentences_b"] == ["doc: " + text for text in S2]
    with caplog.at_level(logging.WARNING, logger="sentsim"):  # theirs ignores it silently: runs, with a warning
        SentenceTransformerTrainer(model=model, args=_args(prompts={"stsb": "q: "}), train_dataset=scored).train()
    assert "'stsb', which is neither a dataset name nor a text column" in caplog.text
    assert seen["sentences_a"] == S1  # no prompt: the one dataset has no name
    with pytest.raises(ConfigError, match="nested dictionary"):  # by dataset name, but there is one dataset
        SentenceTransformerTrainer(model=model, args=_args(prompts={"stsb": {"sentence1": "q: "}}),
                                   train_dataset=scored)
    with pytest.raises(ConfigError, match="prompts must be a string"):
        _args(prompts={"stsb": ["q: "]})
    model.pooling.include_prompt = False  # training does not track prompt lengths: refused, not mis-pooled
    with pytest.raises(ConfigError, match="include_prompt=False"):
        SentenceTransformerTrainer(model=model, args=_args(prompts="q: "), train_dataset=scored)


def test_evaluations_come_when_eval_strategy_says_as_theirs(model):
    from sentsim import SentenceTransformerTrainer
    from sentsim.losses import MultipleNegativesRankingLoss

    def eval_steps(**options):
        trainer = SentenceTransformerTrainer(model=model, args=_args(per_device_train_batch_size=2, **options),
                                             train_dataset=PAIRS, eval_dataset=PAIRS,
                                             loss=MultipleNegativesRankingLoss(model))
        trainer.train()  # 6 rows in batches of 2: an epoch is 3 steps
        return [record["step"] for record in trainer.state.log_history if is_logged(record, "eval")]

    assert eval_steps(eval_strategy="steps", eval_steps=2, max_steps=5) == [2, 4]  # not at the epoch's end (3)
    assert eval_steps(eval_strategy="epoch", max_steps=-1, num_train_epochs=2) == [3, 6]


def test_a_dict_of_losses_needs_a_dict_of_datasets_as_theirs(model):
    from sentsim import SentenceTransformerTrainer
    from sentsim.losses import MultipleNegativesRankingLoss

    with pytest.raises(ValueError, match=r"the `train_dataset` must be a `DatasetDict`"):
        SentenceTransformerTrainer(model=model, args=_args(), train_dataset=datasets.Dataset.from_dict(PAIRS),
                                   loss={"nli": MultipleNegativesRankingLoss(model)})


def test_batch_samplers_have_sentence_transformers_values_and_names():
    from sentsim import BatchSamplers
    from sentsim.errors import ConfigError
    from sentsim.training_args import BatchSamplers as FromTrainingArgs

    assert FromTrainingArgs is BatchSamplers
    assert {member.name: member.value for member in BatchSamplers} == {
        "BATCH_SAMPLER": "batch_sampler", "NO_DUPLICATES": "no_duplicates",
        "NO_DUPLICATES_HASHED": "no_duplicates_hashed", "GROUP_BY_LABEL": "group_by_label"}
    for accepted in (BatchSamplers.NO_DUPLICATES, BatchSamplers.BATCH_SAMPLER, "no_duplicates"):
        assert _args(batch_sampler=accepted).batch_sampler == accepted
    for refused in (BatchSamplers.GROUP_BY_LABEL, "group_by_label"):
        with pytest.raises(ConfigError, match="batch_sampler 'group_by_label' is not supported"):
            _args(batch_sampler=refused)
    probe = "import sys; from sentsim.training_args import BatchSamplers; assert 'torch' not in sys.modules"
    assert subprocess.run([sys.executable, "-c", probe], check=False).returncode == 0


def test_fp16_false_is_accepted_and_only_a_true_fp16_refused():
    from sentsim.errors import ConfigError

    assert _args(fp16=False, bf16=False).fp16 is False
    with pytest.raises(ConfigError, match="fp16=True is not supported"):
        _args(fp16=True)


@pytest.mark.parametrize(("column", "value", "message"), [
    ("sentence1", None, r"column 'sentence1' at index 2: None is not a text \(str\)"),
    ("sentence2", 7, "column 'sentence2' at index 2: 7 is not a text"),
    ("score", None, "column 'score' at index 2: None is not a number"),
    ("score", "0.4", "column 'score' at index 2: '0.4' is not a number"),
    ("score", float("nan"), "column 'score' at index 2: nan is not a finite number"),
])
def test_missing_or_mistyped_values_are_refused_by_column_and_index(model, column, value, message):
    """Before, a missing text trained as the text "None" and a missing score failed inside float()."""
    from sentsim import SentenceTransformerTrainer
    from sentsim.errors import ConfigError

    columns = {"sentence1": list(S1), "sentence2": list(S2), "score": list(SCORES)}
    columns[column][2] = value
    with pytest.raises(ConfigError, match=message):
        SentenceTransformerTrainer(model=model, args=_args(), train_dataset=columns).train()


def test_fit_refuses_an_input_example_without_a_text_or_a_label(model):
    from torch.utils.data import DataLoader

    from sentsim import InputExample, losses
    from sentsim.errors import ConfigError

    good = [InputExample(texts=[a, b], label=s) for a, b, s in TRAIN_PAIRS]
    for bad, message in ((InputExample(texts=["a", None], label=0.5), r"InputExample texts\[1\] at index 3: None"),
                         (InputExample(texts=["a", "b"], label=float("inf")), "InputExample label at index 3: inf")):
        examples = [*good[:3], bad, *good[3:]]
        with pytest.raises(ConfigError, match=message):
            model.fit(train_objectives=[(DataLoader(examples, batch_size=4), losses.CosineSimilarityLoss(model))],
                      epochs=1, show_progress_bar=False)


def test_training_arguments_parse_from_a_command_line_as_theirs():
    """Training scripts build their arguments with Hugging Face's HfArgumentParser; a dict of prompts comes as JSON."""
    from transformers import HfArgumentParser

    from sentsim import SentenceTransformerTrainingArguments
    from sentsim.training_args import BatchSamplers, MultiDatasetBatchSamplers

    args, = HfArgumentParser(SentenceTransformerTrainingArguments).parse_args_into_dataclasses(args=[
        "--output_dir", "out", "--prompts", '{"query": "query: ", "answer": "passage: "}', "--batch_sampler",
        "no_duplicates", "--multi_dataset_batch_sampler", "round_robin", "--learning_rate", "0.0005", "--bf16",
        "--eval_strategy", "steps", "--eval_steps", "10", "--num_train_epochs", "2"])
    assert args.output_dir == "out" and args.prompts == {"query": "query: ", "answer": "passage: "}
    assert args.batch_sampler == BatchSamplers.NO_DUPLICATES
    assert args.multi_dataset_batch_sampler == MultiDatasetBatchSamplers.ROUND_ROBIN
    config = args.to_config()
    assert (config.learning_rate, config.dtype, config.evaluation_steps, config.epochs) == (0.0005, "bf16", 10, 2)
    assert SentenceTransformerTrainingArguments(prompts="{not json").prompts == "{not json"  # one prompt for all


def test_eval_and_logging_steps_below_1_are_fractions_of_the_run(model):
    # Hugging Face's reading: eval_steps=0.25 of an 8-step run evaluates every 2 steps, rounded up
    from sentsim import SentenceTransformerTrainer
    from sentsim.losses import CosineSimilarityLoss

    scored = datasets.Dataset.from_dict({"sentence1": S1, "sentence2": S2, "score": SCORES})
    trainer = SentenceTransformerTrainer(
        model=model, args=_args(max_steps=8, eval_strategy="steps", eval_steps=0.25, logging_steps=0.5),
        train_dataset=scored, eval_dataset=scored, loss=CosineSimilarityLoss(model))
    trainer.train()
    steps = {kind: [record["step"] for record in trainer.state.log_history if is_logged(record, kind)]
             for kind in ("eval", "train")}
    assert steps == {"eval": [2, 4, 6, 8], "train": [4, 8]}


def test_gradient_accumulation_steps_count_optimizer_steps_as_hugging_face_does(model):
    from sentsim import SentenceTransformerTrainer
    from sentsim.losses import MultipleNegativesRankingLoss

    pairs = datasets.Dataset.from_dict({"anchor": S1, "positive": S2})  # 10 pairs
    trainer = SentenceTransformerTrainer(
        model=model, args=_args(max_steps=-1, num_train_epochs=1, per_device_train_batch_size=2,
                                gradient_accumulation_steps=2, logging_steps=1),
        train_dataset=pairs, loss=MultipleNegativesRankingLoss(model))
    # 5 micro-batches of 2 pairs; Hugging Face steps after every 2 and after the last one: 3 steps
    assert trainer.train().global_step == 3
    assert [record["step"] for record in trainer.state.log_history if is_logged(record, "train")] == [1, 2, 3]
