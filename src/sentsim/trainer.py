"""``SentenceTransformerTrainer`` where sentence-transformers scripts import it from: ``sentence_transformers.trainer``.

Only re-exports, lazily, so code that changes just its import line keeps working (see ``sentsim.lazy``).
"""

from sentsim.lazy import lazy_exports

_EXPORTS = {
    "SentenceTransformerTrainer": "sentsim.training.trainer",
}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
__all__ = sorted(_EXPORTS)
