"""The Trainer's callbacks: EarlyStoppingCallback as the loop's patience, the default progress callbacks, and
add / pop / remove as Hugging Face's CallbackHandler does them (tiny model)."""

from __future__ import annotations

import pytest

from tests.conftest import TRAIN_PAIRS, is_logged
from tests.trainer_support import trainer_arguments as _args

datasets = pytest.importorskip("datasets")

S1 = [a for a, _, _ in TRAIN_PAIRS]
S2 = [b for _, b, _ in TRAIN_PAIRS]
SCORES = [s for _, _, s in TRAIN_PAIRS]


@pytest.fixture
def model(tiny_model):
    return tiny_model


def test_early_stopping_callback_stops_after_patience_evaluations_without_gain(model):
    from transformers import EarlyStoppingCallback, TrainerCallback

    from sentsim import SentenceTransformerTrainer
    from sentsim.losses import CosineSimilarityLoss

    scored = datasets.Dataset.from_dict({"sentence1": S1, "sentence2": S2, "score": SCORES})

    class Constant:  # no evaluation after the first beats it
        primary_metric = "constant"

        def __call__(self, model, output_path=None, epoch=-1, steps=-1):
            return {"constant": 0.5}

    def trainer(callbacks, **options):
        arguments = {"max_steps": 20, "eval_strategy": "steps", "eval_steps": 2, "load_best_model_at_end": True,
                     **options}
        return SentenceTransformerTrainer(model=model, args=_args(**arguments), train_dataset=scored,
                                          evaluator=Constant(), loss=CosineSimilarityLoss(model), callbacks=callbacks)

    stopping = trainer([EarlyStoppingCallback(early_stopping_patience=2)])
    result = stopping.train()
    assert [record["step"] for record in stopping.state.log_history if is_logged(record, "eval")] == [2, 4, 6]
    assert result.global_step == 6 and stopping.state.best_global_step == 2
    added = trainer(None)
    added.add_callback(EarlyStoppingCallback)  # a class, as Hugging Face's add_callback takes too
    assert added.patience == 1 and added.train().global_step == 4
    class Custom(TrainerCallback):
        pass

    with pytest.raises(ValueError, match=r"does not run Trainer callbacks \(Custom\)"):
        trainer([Custom()])
    with pytest.raises(ValueError, match=r"early_stopping_threshold=0\.1 is not supported"):
        trainer([EarlyStoppingCallback(early_stopping_patience=2, early_stopping_threshold=0.1)])
    with pytest.raises(ValueError, match="EarlyStoppingCallback requires load_best_model_at_end"):
        trainer([EarlyStoppingCallback()], load_best_model_at_end=False).train()


def test_pop_and_remove_callback_as_hugging_face_and_taking_out_progress_silences_the_run(model, capsys):
    from transformers import EarlyStoppingCallback, PrinterCallback, ProgressCallback

    from sentsim import SentenceTransformerTrainer
    from sentsim.losses import CosineSimilarityLoss

    scored = datasets.Dataset.from_dict({"sentence1": S1, "sentence2": S2, "score": SCORES})
    stopping = EarlyStoppingCallback(early_stopping_patience=3)
    trainer = SentenceTransformerTrainer(model=model, args=_args(max_steps=2, disable_tqdm=False),
                                         train_dataset=scored, loss=CosineSimilarityLoss(model), callbacks=[stopping])
    assert trainer.patience == 3
    assert trainer.pop_callback(EarlyStoppingCallback) is stopping and trainer.patience is None
    assert trainer.pop_callback(EarlyStoppingCallback) is None  # a class not held: nothing, as theirs
    trainer.add_callback(stopping)
    trainer.remove_callback(stopping)
    with pytest.raises(ValueError, match="is not among this trainer's callbacks"):
        trainer.remove_callback(stopping)  # an instance not held, as list.remove in theirs
    progress = trainer.pop_callback(ProgressCallback)
    assert isinstance(progress, ProgressCallback) and trainer.pop_callback(PrinterCallback) is None
    capsys.readouterr()
    trainer.train()
    assert capsys.readouterr().err == ""  # no progress bar, no status lines
    trainer.add_callback(progress)  # what pop_callback gave back goes back in
    assert trainer.callbacks.shows_progress
    quiet = SentenceTransformerTrainer(model=model, args=_args(disable_tqdm=True), train_dataset=scored,
                                       loss=CosineSimilarityLoss(model))
    assert isinstance(quiet.pop_callback(PrinterCallback), PrinterCallback)  # Hugging Face's disable_tqdm default
