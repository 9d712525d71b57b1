"""The training stage: options, the loop, the classic ``fit`` adapter and the ``sentsim train`` run."""

from .compat import InputExample, SentencesDataset, fit
from .config import TrainConfig
from .loop import TrainResult, train

__all__ = ["InputExample", "SentencesDataset", "TrainConfig", "TrainResult", "fit", "train"]
