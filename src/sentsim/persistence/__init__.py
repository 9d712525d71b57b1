"""Persistence: the sentence-transformers folder layout, the hub and atomic writes."""
