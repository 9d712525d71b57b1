"""Inference: one batched no-grad forward, encode, cosine → calibrated 0–5 score; no training here."""
