"""The path sentence-transformers scripts import ``SentenceTransformerModelCardData`` from (``.model_card``).

Only re-exports, lazily, so code that changes just its import line keeps working (see ``sentsim.lazy``).
"""

from sentsim.lazy import lazy_exports

_EXPORTS = {
    "SentenceTransformerModelCardData": "sentsim.persistence.card_data",
}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
__all__ = sorted(_EXPORTS)
