"""Serve: the HTTP service over the inference stage (routes, schemas, limits, batching queue)."""
