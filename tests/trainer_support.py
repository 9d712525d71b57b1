"""What the Trainer tests share: training arguments small enough for the tiny model."""

from __future__ import annotations

from typing import Any


def trainer_arguments(**options: Any):
    """One step of 4 pairs, fp32, nothing saved, no progress bar; ``options`` override any of it."""
    from sentsim import SentenceTransformerTrainingArguments

    defaults = {"max_steps": 1, "per_device_train_batch_size": 4, "per_device_eval_batch_size": 16,
                "save_strategy": "no", "disable_tqdm": True, "dtype": "fp32"}
    return SentenceTransformerTrainingArguments(output_dir=None, **{**defaults, **options})
