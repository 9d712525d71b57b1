"""Pooling mode names and their legacy config keys: torch-free, shared by ``Pooling`` and the ONNX backend."""

#: Pooling modes, in the order sentence-transformers concatenates them when several are on.
POOLING_MODES = ("cls", "max", "mean", "mean_sqrt_len", "weightedmean", "lasttoken")
#: Legacy config keys (``1_Pooling/config.json``) for each mode, in ``POOLING_MODES`` order.
LEGACY_KEYS = {
    "cls": "pooling_mode_cls_token",
    "max": "pooling_mode_max_tokens",
    "mean": "pooling_mode_mean_tokens",
    "mean_sqrt_len": "pooling_mode_mean_sqrt_len_tokens",
    "weightedmean": "pooling_mode_weightedmean_tokens",
    "lasttoken": "pooling_mode_lasttoken",
}

#: Other spellings of the modes: people's (``mean-sqrt-len``, ``last_token``), sentence-transformers'
#: ``pooling_mode`` strings of any version (``mean_tokens``, ``mean_sqrt_len_tokens``, ``cls_token``).
ALIASES = {"mean-sqrt-len": "mean_sqrt_len", "mean_sqrt_len_tokens": "mean_sqrt_len", "mean_tokens": "mean",
           "max_tokens": "max", "cls_token": "cls", "weighted-mean": "weightedmean", "weighted_mean": "weightedmean",
           "weightedmean_tokens": "weightedmean", "last-token": "lasttoken", "last_token": "lasttoken"}
