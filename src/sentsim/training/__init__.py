"""The training stage: options, recipes, the loop, the classic ``fit`` adapter and the ``sentsim train`` run."""

from sentsim.lazy import lazy_exports

_EXPORTS = {
    "InputExample": "sentsim.training.compat",
    "SentencesDataset": "sentsim.training.compat",
    "fit": "sentsim.training.compat",
    "TrainConfig": "sentsim.training.config",
    "TrainResult": "sentsim.training.loop",
    "train": "sentsim.training.loop",
    "SentenceTransformerTrainer": "sentsim.training.trainer",
    "SentenceTransformerTrainingArguments": "sentsim.training.trainer_args",
}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
__all__ = sorted(_EXPORTS)
