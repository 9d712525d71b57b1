"""Encoders: the bi-encoder (SentenceTransformer) and the cross-encoder, each a pipeline of modules."""
