"""SentenceTransformerTrainingArguments: Hugging Face's fields, accepted where sentsim does what they ask."""

from __future__ import annotations

import dataclasses

import pytest

from sentsim.errors import ConfigError
from sentsim.training.trainer_args import SentenceTransformerTrainingArguments as Arguments

#: sentsim's own field, and older Hugging Face names that scripts written for it still pass.
_NOT_THEIRS = {"dtype", "overwrite_output_dir", "logging_dir"}
#: Defaults spelt otherwise for the same behaviour: theirs None means "no warm-up ratio", "tqdm as usual",
#: "no mapping".
_SPELT_OTHERWISE = {"warmup_ratio": (0.0, None), "disable_tqdm": (False, None), "router_mapping": (None, {}),
                    "learning_rate_mapping": (None, {})}


def _default(item: dataclasses.Field):
    if item.default is not dataclasses.MISSING:
        return item.default
    return item.default_factory() if item.default_factory is not dataclasses.MISSING else dataclasses.MISSING


def _theirs() -> dict[str, dataclasses.Field]:
    module = pytest.importorskip("sentence_transformers")
    return {item.name: item for item in dataclasses.fields(module.SentenceTransformerTrainingArguments)}


def test_every_field_is_sentence_transformers_own_with_its_default():
    theirs = _theirs()
    ours = {item.name: item for item in dataclasses.fields(Arguments)}
    assert sorted(set(ours) - set(theirs)) == sorted(_NOT_THEIRS)
    for name in set(ours) & set(theirs):
        mine, their = _default(ours[name]), _default(theirs[name])
        mine, their = getattr(mine, "value", mine), getattr(their, "value", their)
        assert (mine, their) == _SPELT_OTHERWISE.get(name, (their, their)), name


def test_a_script_that_spells_out_their_defaults_runs_unchanged():
    theirs = _theirs()
    shared = {name: _default(item) for name, item in theirs.items()
              if name in {item.name for item in dataclasses.fields(Arguments)}}
    assert len(shared) > 70
    explicit = Arguments(**{name: value for name, value in shared.items() if name != "output_dir"})
    assert explicit.to_config() == Arguments().to_config()


@pytest.mark.parametrize(("options", "message"), [
    ({"gradient_accumulation_steps": 0}, r"gradient_accumulation_steps must be a whole number of at least 1"),
    ({"gradient_accumulation_steps": True}, r"gradient_accumulation_steps must be a whole number"),
    ({"lr_scheduler_type": "reduce_lr_on_plateau"},
     r"lr_scheduler_type='reduce_lr_on_plateau' is not supported \(it follows the eval metric"),
    ({"lr_scheduler_type": "wavy"}, r"lr_scheduler_type='wavy' is not supported; supported: linear, cosine"),
    ({"optim": "adafactor"}, r"optim='adafactor' is not supported: .*AdamW"),
    ({"adam_beta2": 0.98}, r"adam_beta2=0.98 is not supported: .*\(0.9, 0.999\)"),
    ({"report_to": "wandb"}, r"report_to='wandb' is not supported: .*log_history"),
    ({"report_to": ["tensorboard"]}, r"report_to=\('tensorboard',\) is not supported"),
    ({"push_to_hub": True}, r"push_to_hub=True is not supported: .*upload_folder"),
    ({"dataloader_drop_last": True}, r"dataloader_drop_last=True is not supported"),
    ({"lr_scheduler_kwargs": "{num_cycles: 2}"}, r"lr_scheduler_kwargs is not JSON"),
    ({"lr_scheduler_kwargs": [2]}, r"lr_scheduler_kwargs must be a dict"),
])
def test_a_field_at_a_value_sentsim_does_not_honour_is_refused_by_name(options, message):
    with pytest.raises(ConfigError, match=message):
        Arguments(output_dir="out", **options)


def test_fields_that_change_nothing_here_are_accepted_at_any_value():
    plain = Arguments(output_dir="out")
    busy = Arguments(output_dir="out", dataloader_num_workers=4, dataloader_pin_memory=False, do_train=True,
                     do_eval=True, local_rank=0, hub_model_id="me/model",
                     resume_from_checkpoint="out/checkpoint-9", report_to=["none"], optim="adamw_torch")
    assert busy.to_config() == plain.to_config()


def test_a_data_seed_equal_to_seed_is_accepted_and_another_refused():
    assert Arguments(output_dir="out", seed=7, data_seed=7).to_config().seed == 7
    with pytest.raises(ConfigError, match=r"data_seed=8 is not supported: seed orders the data too"):
        Arguments(output_dir="out", seed=7, data_seed=8)


def test_use_cpu_trains_on_the_cpu():
    assert Arguments(use_cpu=True).to_config().device == "cpu"
    assert Arguments().to_config().device == "auto"


def test_hugging_faces_parser_reads_the_fields():
    from transformers import HfArgumentParser

    args, = HfArgumentParser(Arguments).parse_args_into_dataclasses(args=[
        "--output_dir", "out", "--gradient_accumulation_steps", "1", "--optim", "adamw_torch", "--do_train",
        "--dataloader_num_workers", "2", "--use_cpu", "--lr_scheduler_type", "linear"])
    assert (args.do_train, args.dataloader_num_workers, args.use_cpu) == (True, 2, True)
    cosine, = HfArgumentParser(Arguments).parse_args_into_dataclasses(args=[
        "--output_dir", "out", "--lr_scheduler_type", "cosine", "--lr_scheduler_kwargs", '{"num_cycles": 2}',
        "--warmup_steps", "0.1"])
    config = cosine.to_config()
    assert (config.lr_schedule, config.lr_schedule_options, config.warmup_for(95)) == ("cosine", {"num_cycles": 2}, 10)
    with pytest.raises(ConfigError, match="lr_scheduler_type='greedy'"):
        HfArgumentParser(Arguments).parse_args_into_dataclasses(args=[
            "--output_dir", "out", "--lr_scheduler_type", "greedy"])


def test_gradient_accumulation_makes_each_step_several_micro_batches():
    config = Arguments(per_device_train_batch_size=16, gradient_accumulation_steps=4).to_config()
    assert (config.batch_size, config.accumulation_steps) == (64, 4)


def test_report_to_all_is_accepted_only_while_no_tracker_is_installed(monkeypatch):
    from sentsim.training import trainer_args

    monkeypatch.setattr(trainer_args, "_installed_trackers", lambda: [])
    assert Arguments(output_dir="out", report_to="all").to_config() == Arguments(output_dir="out").to_config()
    assert Arguments(output_dir="out", report_to=["all"]).report_to == ["all"]
    monkeypatch.setattr(trainer_args, "_installed_trackers", lambda: ["tensorboard"])
    with pytest.raises(ConfigError, match=r"report_to='all' is not supported: sentsim reports to no experiment"):
        Arguments(output_dir="out", report_to="all")
