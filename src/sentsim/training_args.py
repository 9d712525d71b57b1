"""Where sentence-transformers code imports its training arguments from: ``sentence_transformers.training_args``.

Only re-exports, lazily, so ``from sentsim.training_args import BatchSamplers`` loads no torch.
"""

from sentsim.lazy import lazy_exports

_EXPORTS = {
    "BatchSamplers": "sentsim.training.batch_samplers",
    "MultiDatasetBatchSamplers": "sentsim.training.batch_samplers",
    "SentenceTransformerTrainingArguments": "sentsim.training.trainer_args",
}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
__all__ = sorted(_EXPORTS)
