"""Several datasets and several evaluators: batch turns, per-dataset losses and prompts, the Trainer's
DatasetDict API, and SequentialEvaluator."""

from __future__ import annotations

import pytest
import torch

from tests.conftest import TRAIN_PAIRS, is_logged

datasets = pytest.importorskip("datasets")

S1 = [a for a, _, _ in TRAIN_PAIRS]
S2 = [b for _, b, _ in TRAIN_PAIRS]
SCORES = [s for _, _, s in TRAIN_PAIRS]
SCORED = {"sentence1": S1, "sentence2": S2, "score": SCORES}
PAIRS = {"anchor": S1[:6], "positive": S2[:6]}


@pytest.fixture
def model(tiny_transformer_dir):
    from sentsim import SentenceTransformer

    return SentenceTransformer(str(tiny_transformer_dir))


def _args(**options):
    from sentsim import SentenceTransformerTrainingArguments

    defaults = {"num_train_epochs": 1, "per_device_train_batch_size": 2, "per_device_eval_batch_size": 16,
                "save_strategy": "no", "disable_tqdm": True, "dtype": "fp32"}
    return SentenceTransformerTrainingArguments(output_dir=None, **{**defaults, **options})


def _turns(strategy, lengths=((5,) * 7, (9,) * 3), epoch=0, seed=1):
    from sentsim.training.multi_dataset import DatasetTurns

    turns = DatasetTurns([list(rows) for rows in lengths], batch_size=2, seed=seed, strategy=strategy)
    turns.set_epoch(epoch)
    return turns, list(turns)


def test_proportional_turns_use_every_row_once_in_batches_of_one_dataset():
    turns, batches = _turns("proportional")
    assert len(batches) == len(turns) == 4 + 2  # 7 rows → 4 batches, 3 rows → 2
    assert sorted(index for batch in batches for index in batch) == list(range(10))
    assert all(max(batch) < 7 or min(batch) >= 7 for batch in batches)  # rows 0–6 are the first dataset's
    assert batches == _turns("proportional")[1]  # seed and epoch decide the order
    orders = {tuple(map(tuple, _turns("proportional", epoch=epoch)[1])) for epoch in range(6)}
    assert len(orders) > 1


def test_round_robin_turns_alternate_and_stop_with_the_smallest_dataset():
    turns, batches = _turns("round_robin")
    assert len(batches) == len(turns) == 2 * 2
    assert [batch[0] >= 7 for batch in batches] == [False, True, False, True]
    with pytest.raises(ValueError, match="must be one of round_robin, proportional"):
        _turns("interleaved")


def test_the_collator_tags_each_batch_with_its_dataset_and_the_loss_follows_it(model):
    from sentsim import losses
    from sentsim.training.config import TrainConfig
    from sentsim.training.loop import TrainingPairs
    from sentsim.training.multi_dataset import TaskCollator

    config = TrainConfig(batch_size=2)
    scored = TrainingPairs.prepare(model, sentences_a=S1, sentences_b=S2, labels=SCORES, negatives=None,
                                   loss=losses.CoSENTLoss(model), config=config)
    unscored = TrainingPairs.prepare(model, sentences_a=PAIRS["anchor"], sentences_b=PAIRS["positive"],
                                     labels=None, negatives=None, loss=losses.MultipleNegativesRankingLoss(model),
                                     config=config)
    collator = TaskCollator([scored, unscored])
    embeddings = torch.randn(6, 4)
    for data, indices, local in ((scored, [1, 4, 2], [1, 4, 2]), (unscored, [len(S1) + 3, len(S1)], [3, 0])):
        features, targets = collator(indices)
        expected_features, expected_targets = data.collator(local)
        assert all(torch.equal(features[name], expected_features[name]) for name in expected_features)
        assert targets[:, 0].tolist() == [float(data is unscored)] * len(indices)
        n = 2 * len(indices)
        assert torch.equal(collator.loss(embeddings[:n], targets), data.loss(embeddings[:n], expected_targets))
    with pytest.raises(ValueError, match="mixes rows of several datasets"):
        collator([0, len(S1)])


def test_a_dataset_dict_of_one_dataset_trains_exactly_as_the_dataset(model, tiny_transformer_dir):
    from sentsim import SentenceTransformer, SentenceTransformerTrainer, losses

    other = SentenceTransformer(str(tiny_transformer_dir))
    SentenceTransformerTrainer(model=model, args=_args(), train_dataset=SCORED,
                               loss=losses.CoSENTLoss(model)).train()
    SentenceTransformerTrainer(model=other, args=_args(), train_dataset={"stsb": datasets.Dataset.from_dict(SCORED)},
                               loss=losses.CoSENTLoss(other)).train()
    trained = dict(model.named_parameters())
    assert any(not torch.equal(trained[name], value) for name, value in
               SentenceTransformer(str(tiny_transformer_dir)).named_parameters())
    assert all(torch.equal(trained[name], value) for name, value in other.named_parameters())


def test_several_datasets_train_each_with_its_own_loss_and_prompts(model, monkeypatch):
    from sentsim import SentenceTransformerTrainer, losses

    cosent, mnrl = losses.CoSENTLoss(model), losses.MultipleNegativesRankingLoss(model)
    calls = {"cosent": [], "mnrl": []}
    for name, loss in (("cosent", cosent), ("mnrl", mnrl)):
        loss.register_forward_hook(lambda module, inputs, output, name=name: calls[name].append(inputs[0].shape[0]))
    train = datasets.DatasetDict({"stsb": datasets.Dataset.from_dict(SCORED),
                                  "nli": datasets.Dataset.from_dict(PAIRS)})
    seen = []
    real = model.token_ids
    monkeypatch.setattr(model, "token_ids", lambda texts, **kw: seen.extend(texts) or real(texts, **kw))
    args = _args(prompts={"stsb": {"sentence1": "q: "}, "nli": "doc: "}, logging_steps=1)
    trainer = SentenceTransformerTrainer(model=model, args=args, train_dataset=train,
                                         loss={"stsb": cosent, "nli": mnrl})
    output = trainer.train()
    stsb_batches, nli_batches = -(-len(S1) // 2), 3
    assert output.global_step == stsb_batches + nli_batches
    assert len(calls["cosent"]) == stsb_batches and len(calls["mnrl"]) == nli_batches
    assert sum(calls["cosent"]) == len(S1) and sum(calls["mnrl"]) == len(PAIRS["anchor"])
    assert {"q: " + text for text in S1} | set(S2) | {"doc: " + text for text in S1[:6] + S2[:6]} == set(seen)
    round_robin = SentenceTransformerTrainer(model=model, args=_args(multi_dataset_batch_sampler="round_robin"),
                                             train_dataset=train, loss={"stsb": cosent, "nli": mnrl})
    assert round_robin.train().global_step == 2 * nli_batches


def test_several_eval_datasets_report_a_loss_each_and_evaluate_takes_a_name(model):
    from sentsim import SentenceTransformerTrainer, losses

    cosent, mnrl = losses.CoSENTLoss(model), losses.MultipleNegativesRankingLoss(model)
    sets = {"stsb": datasets.Dataset.from_dict(SCORED), "nli": datasets.Dataset.from_dict(PAIRS)}
    trainer = SentenceTransformerTrainer(model=model, args=_args(eval_strategy="epoch"), train_dataset=sets,
                                         eval_dataset=sets, loss={"stsb": cosent, "nli": mnrl})
    trainer.train()
    record = [entry for entry in trainer.state.log_history if is_logged(entry, "eval")][-1]
    assert {"eval_stsb_loss", "eval_nli_loss", "eval_stsb_spearman_cosine"} <= set(record)
    named = trainer.evaluate("nli")
    one = SentenceTransformerTrainer(model=model, args=_args(), eval_dataset=sets["nli"], loss=mnrl).evaluate()
    assert named["eval_nli_loss"] == pytest.approx(one["eval_loss"], abs=1e-6)
    everything = trainer.evaluate()
    assert everything["eval_nli_loss"] == pytest.approx(named["eval_nli_loss"], abs=1e-6)
    assert {"eval_stsb_loss", "eval_stsb_spearman_cosine", "eval_stsb_runtime"} <= set(everything)


def test_multi_dataset_mistakes_are_refused_by_name(model):
    from sentsim import SentenceTransformerTrainer, losses
    from sentsim.errors import ConfigError

    sets = {"stsb": datasets.Dataset.from_dict(SCORED), "nli": datasets.Dataset.from_dict(PAIRS)}
    cosent = losses.CoSENTLoss(model)
    with pytest.raises(ConfigError, match=r"Currently, \['nli'\] occurs in `train_dataset` but not in `loss`"):
        SentenceTransformerTrainer(model=model, args=_args(), train_dataset=sets, loss={"stsb": cosent})
    with pytest.raises(ConfigError, match="train dataset 'nli': a scored loss needs two text columns"):
        SentenceTransformerTrainer(model=model, args=_args(), train_dataset=sets, loss=cosent).train()
    with pytest.raises(ConfigError, match="needs metric_for_best_model: their losses are eval_stsb_loss, eval_nli"):
        SentenceTransformerTrainer(model=model, args=_args(eval_strategy="epoch", load_best_model_at_end=True),
                                   train_dataset=sets, eval_dataset=sets,
                                   loss={"stsb": cosent, "nli": losses.MultipleNegativesRankingLoss(model)})
    with pytest.raises(ConfigError, match="multi_dataset_batch_sampler must be one of round_robin, proportional"):
        _args(multi_dataset_batch_sampler="temperature")
    with pytest.raises(ConfigError, match=r"invalid in your nli dataset: \['dataset_name'\]"):
        SentenceTransformerTrainer(model=model, args=_args(), train_dataset={
            "nli": datasets.Dataset.from_dict({**PAIRS, "dataset_name": ["x"] * 6})})


def test_load_best_model_at_end_ranks_by_a_named_eval_loss_lowest_first(model, capsys):
    from sentsim import SentenceTransformerTrainer, losses

    sets = {"stsb": datasets.Dataset.from_dict(SCORED), "nli": datasets.Dataset.from_dict(PAIRS)}
    trainer = SentenceTransformerTrainer(
        model=model, args=_args(eval_strategy="steps", eval_steps=1, max_steps=4, load_best_model_at_end=True,
                                metric_for_best_model="nli_loss", disable_tqdm=False),
        train_dataset=sets, eval_dataset=sets,
        loss={"stsb": losses.CoSENTLoss(model), "nli": losses.MultipleNegativesRankingLoss(model)})
    trainer.train()
    values = [entry["eval_nli_loss"] for entry in trainer.state.log_history if is_logged(entry, "eval")]
    assert len(values) == 4 and trainer.state.best_metric == pytest.approx(min(values))
    assert all({"eval_nli_runtime", "eval_stsb_samples_per_second", "eval_stsb_steps_per_second"} <= set(entry)
               for entry in trainer.state.log_history if is_logged(entry, "eval"))  # each dataset timed, as theirs
    # the log shows the loss that ranks, not the negation the loop keeps highest
    shown = [line for line in capsys.readouterr().err.splitlines() if line.startswith("eval step")]
    assert len(shown) == 4 and all(" dev eval_nli_loss " in line for line in shown)
    assert shown[-1].split("  best ")[1].split()[0] == f"{min(values):.2f}"
    assert trainer.evaluate("nli")["eval_nli_loss"] == pytest.approx(min(values), abs=1e-5)


def test_the_multi_dataset_names_import_where_sentence_transformers_has_them():
    from sentsim import MultiDatasetBatchSamplers
    from sentsim.training_args import MultiDatasetBatchSamplers as from_args

    assert from_args is MultiDatasetBatchSamplers
    assert [member.value for member in MultiDatasetBatchSamplers] == ["round_robin", "proportional"]
    st = pytest.importorskip("sentence_transformers.training_args")
    assert {member.name: member.value for member in st.MultiDatasetBatchSamplers} == {
        member.name: member.value for member in MultiDatasetBatchSamplers}


def test_sequential_evaluator_merges_as_sentence_transformers_does(model):
    from sentsim.evaluation import EmbeddingSimilarityEvaluator, SequentialEvaluator

    first = EmbeddingSimilarityEvaluator(S1, S2, SCORES, name="a", dtype="fp32")
    second = EmbeddingSimilarityEvaluator(S1[:6], S2[:6], SCORES[:6], name="b", dtype="fp32",
                                          similarity_fn_names=["cosine", "dot"])
    results = SequentialEvaluator([first, second])(model)
    assert results["sequential_score"] == results["b_spearman_max"]  # the last evaluator's primary metric
    assert {"a_spearman_cosine", "b_pearson_dot"} <= set(results)
    mean = SequentialEvaluator([first, second], main_score_function=lambda scores: sum(scores) / len(scores))
    assert mean(model)["sequential_score"] == pytest.approx(
        (results["a_spearman_cosine"] + results["b_spearman_max"]) / 2)
    assert SequentialEvaluator([lambda *args: 0.25, first])(model)["evaluator_0"] == 0.25
    theirs = pytest.importorskip("sentence_transformers.evaluation").SequentialEvaluator
    assert theirs([first, second])(model) == results


def test_a_list_of_evaluators_runs_as_one_and_its_score_ranks(model):
    from sentsim import SentenceTransformerTrainer
    from sentsim.evaluation import EmbeddingSimilarityEvaluator

    evaluators = [EmbeddingSimilarityEvaluator(S1, S2, SCORES, name=name, dtype="fp32") for name in ("a", "b")]
    trainer = SentenceTransformerTrainer(model=model, args=_args(eval_strategy="epoch"), train_dataset=SCORED,
                                         evaluator=evaluators)
    trainer.train()
    record = [entry for entry in trainer.state.log_history if is_logged(entry, "eval")][-1]
    assert record["eval_sequential_score"] == record["eval_b_spearman_cosine"]
    assert trainer.state.best_metric == record["eval_sequential_score"]


def test_fit_trains_several_objectives_taking_turns_as_sentence_transformers_3(model):
    from torch.utils.data import DataLoader

    from sentsim import InputExample, losses
    from sentsim.errors import ConfigError

    scored = [InputExample(texts=[a, b], label=s) for a, b, s in zip(S1, S2, SCORES, strict=True)]
    unscored = [InputExample(texts=[a, b]) for a, b in zip(PAIRS["anchor"], PAIRS["positive"], strict=True)]
    cosine, mnrl = losses.CosineSimilarityLoss(model), losses.MultipleNegativesRankingLoss(model)
    order = []
    for name, loss in (("cosine", cosine), ("mnrl", mnrl)):
        loss.register_forward_hook(lambda module, inputs, output, name=name: order.append(name))
    before = {name: value.clone() for name, value in model.named_parameters()}
    model.fit(train_objectives=[(DataLoader(scored, batch_size=4), cosine), (DataLoader(unscored, batch_size=2), mnrl)],
              epochs=1, warmup_steps=0, show_progress_bar=False)
    # batch 2 (the last objective's): 3 batches of the 6 unscored rows, so 3 turns of each
    assert order == ["cosine", "mnrl"] * 3
    assert any(not torch.equal(value, before[name]) for name, value in model.named_parameters())
    with pytest.raises(ConfigError, match="objective 2: fit expects a DataLoader over InputExample pairs"):
        model.fit(train_objectives=[(DataLoader(scored), cosine), (DataLoader([InputExample(texts=["a"])]), mnrl)])
