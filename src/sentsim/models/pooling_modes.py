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
