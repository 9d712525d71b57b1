"""Learning-rate schedules and warm-up as Hugging Face's Trainer reads ``lr_scheduler_type``,
``lr_scheduler_kwargs``, ``warmup_steps`` (a fraction below 1) and ``warmup_ratio`` (tiny model)."""

from __future__ import annotations

import pytest
import torch

from tests.conftest import TRAIN_PAIRS

datasets = pytest.importorskip("datasets")

SCORED = {"sentence1": [a for a, _, _ in TRAIN_PAIRS], "sentence2": [b for _, b, _ in TRAIN_PAIRS],
          "score": [s for _, _, s in TRAIN_PAIRS]}
STEPS = 13  # 10 pairs in batches of 2: 5 steps per epoch, so the run crosses two epoch ends


def _logged_rates(folder, **options) -> list[float]:
    from sentsim import SentenceTransformer, SentenceTransformerTrainer, SentenceTransformerTrainingArguments
    from sentsim.losses import CosineSimilarityLoss

    model = SentenceTransformer(str(folder))
    args = SentenceTransformerTrainingArguments(output_dir=None, per_device_train_batch_size=2, max_steps=STEPS,
                                                logging_steps=1, save_strategy="no", disable_tqdm=True,
                                                dtype="fp32", learning_rate=1e-3, **options)
    trainer = SentenceTransformerTrainer(model=model, args=args, loss=CosineSimilarityLoss(model),
                                         train_dataset=datasets.Dataset.from_dict(SCORED))
    trainer.train()
    return [entry["learning_rate"] for entry in trainer.state.log_history if "loss" in entry]


def _hugging_faces_rates(name: str, options: dict, warmup: float) -> list[float]:
    """The rate each step trains at under transformers' own schedule and warm-up reading."""
    from transformers import TrainingArguments, get_scheduler

    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1e-3)
    warmup_steps = TrainingArguments(output_dir="unused", warmup_steps=warmup).get_warmup_steps(STEPS)
    schedule = get_scheduler(name, optimizer, num_warmup_steps=warmup_steps, num_training_steps=STEPS,
                             scheduler_specific_kwargs=options)
    rates = []
    for _ in range(STEPS):
        rates.append(schedule.get_last_lr()[0])
        optimizer.step()
        schedule.step()
    return rates


@pytest.mark.parametrize(("name", "options", "warmup"), [
    ("linear", {}, 0.1),
    ("cosine", {}, 0.1),
    ("cosine_with_restarts", {"num_cycles": 2}, 3),
    ("constant_with_warmup", {}, 0.15),
    ("polynomial", {"power": 2.0, "lr_end": 1e-6}, 0),
    ("cosine_with_min_lr", {"min_lr_rate": 0.1}, 2),
])
def test_each_step_trains_at_the_rate_hugging_faces_schedule_gives(tiny_transformer_dir, name, options, warmup):
    logged = _logged_rates(tiny_transformer_dir, lr_scheduler_type=name, lr_scheduler_kwargs=options,
                           warmup_steps=warmup)
    assert logged == pytest.approx(_hugging_faces_rates(name, options, warmup), rel=1e-6, abs=1e-12)


def test_a_warmup_ratio_is_a_fractional_warmup_steps_as_in_sentence_transformers_6(tiny_transformer_dir):
    # 0.25 of 13 steps is 3.25: Hugging Face rounds a fraction up, to 4 steps of warm-up
    by_ratio = _logged_rates(tiny_transformer_dir, warmup_ratio=0.25)
    assert by_ratio == pytest.approx(_hugging_faces_rates("linear", {}, 0.25), rel=1e-6, abs=1e-12)
    assert by_ratio[4] == pytest.approx(1e-3) and by_ratio[3] < 1e-3
    assert _logged_rates(tiny_transformer_dir, warmup_steps=0.25) == by_ratio


def test_warmup_for_reads_fractions_and_step_counts():
    from sentsim.training import TrainConfig

    assert [TrainConfig(warmup_steps=steps).warmup_for(13) for steps in (0.1, 0.25, 3, 3.0, 20)] == [2, 4, 3, 3, 13]
    assert TrainConfig(warmup_ratio=0.1).warmup_for(95) == 10  # sentsim's own ratio rounds to the nearest


def test_options_a_schedule_does_not_take_are_refused_when_training_starts(tiny_transformer_dir):
    from sentsim.errors import ConfigError

    with pytest.raises(ConfigError, match=r"lr schedule 'cosine' with options \{'num_cycle': 2\}"):
        _logged_rates(tiny_transformer_dir, lr_scheduler_type="cosine", lr_scheduler_kwargs={"num_cycle": 2})


def test_the_classic_fit_takes_sentence_transformers_scheduler_names(tiny_transformer_dir, monkeypatch):
    from torch.utils.data import DataLoader

    from sentsim import InputExample, SentenceTransformer, losses
    from sentsim.training import compat

    model = SentenceTransformer(str(tiny_transformer_dir))
    loader = DataLoader([InputExample(texts=[a, b], label=s) for a, b, s in TRAIN_PAIRS], batch_size=4)
    seen = []
    monkeypatch.setattr(compat, "train", lambda *args, config, **options: seen.append(config))
    names = {"WarmupLinear": "linear", "warmupcosine": "cosine", "WarmupConstant": "constant_with_warmup",
             "ConstantLR": "constant", "WarmupCosineWithHardRestarts": "cosine_with_restarts"}
    for name in names:
        model.fit(train_objectives=[(loader, losses.CosineSimilarityLoss(model))], scheduler=name, warmup_steps=2,
                  show_progress_bar=False)
    assert [config.lr_schedule for config in seen] == list(names.values())
    assert all(config.warmup_steps == 2 for config in seen)
    with pytest.raises(ValueError, match="Unknown scheduler 'WarmupSine'"):
        model.fit(train_objectives=[(loader, losses.CosineSimilarityLoss(model))], scheduler="WarmupSine")
