"""The model's building blocks: small torch modules that each save and load themselves.

Exports resolve lazily, so the torch-free ``pooling_modes`` table can be imported without torch.
"""

from sentsim.lazy import lazy_exports

_EXPORTS = {
    "POOLING_MODES": "sentsim.models.pooling_modes",
    "Dense": "sentsim.models.dense",
    "Normalize": "sentsim.models.normalize",
    "Pooling": "sentsim.models.pooling",
    "Transformer": "sentsim.models.transformer",
}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
__all__ = sorted(_EXPORTS)
