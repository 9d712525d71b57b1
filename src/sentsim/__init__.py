"""sentsim: train, evaluate and serve siamese sentence-embedding models for semantic similarity.

The top level is lazy (see ``sentsim.lazy``): ``import sentsim`` loads no torch, so the command line
starts in milliseconds and the ONNX backend runs where torch is not installed.
"""

__version__ = "0.1.0"

from sentsim.lazy import lazy_exports

_EXPORTS = {
    "SentenceTransformer": "sentsim.encoders.bi_encoder",
    "CrossEncoder": "sentsim.encoders.cross_encoder",
    "OnnxSentenceEncoder": "sentsim.inference.onnx_backend",
    "export_model": "sentsim.export.onnx_export",
    "InputExample": "sentsim.training.compat",
    "SentencesDataset": "sentsim.training.compat",
    "losses": "sentsim.losses",
    "evaluation": "sentsim.evaluation",
    "util": "sentsim.util",
    "SentenceTransformerTrainer": "sentsim.training.trainer",
    "SentenceTransformerTrainingArguments": "sentsim.training.trainer_args",
    "BatchSamplers": "sentsim.training.batch_samplers",
    "MultiDatasetBatchSamplers": "sentsim.training.batch_samplers",
    "SimilarityFunction": "sentsim.inference.similarity",
    "quantize_embeddings": "sentsim.inference.quantize",
    "SentenceTransformerModelCardData": "sentsim.persistence.card_data",
}
#: Without torch, ``SentenceTransformer(folder, backend="onnx")`` still works (see sentsim.inference.torch_free).
_FALLBACKS = {"SentenceTransformer": "sentsim.inference.torch_free"}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, fallbacks=_FALLBACKS)
__all__ = ["__version__", *_EXPORTS]
