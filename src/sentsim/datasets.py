"""The path older sentence-transformers scripts import ``SentencesDataset`` and ``NoDuplicatesDataLoader`` from.

Only re-exports, lazily, so code that changes just its import line keeps working (see ``sentsim.lazy``).
"""

from sentsim.lazy import lazy_exports

_EXPORTS = {
    "SentencesDataset": "sentsim.training.compat",
    "NoDuplicatesDataLoader": "sentsim.training.compat",
}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
__all__ = sorted(_EXPORTS)
