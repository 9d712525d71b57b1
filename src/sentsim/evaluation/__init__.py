"""Evaluation: metrics, evaluating a model on pairs, comparing two models, evaluators for training."""
