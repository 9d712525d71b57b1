"""What ``sentsim train`` needs besides the hyper-parameters: base model, data, output folder."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sentsim.persistence.hub import DEFAULT_MODEL


@dataclass(kw_only=True)
class RunOptions:
    """Everything ``sentsim train`` needs besides the hyper-parameters."""

    output: Path
    #: Replace an existing ``output`` when it is a sentsim run folder holding nothing else (never another folder).
    overwrite: bool = False
    base_model: str = DEFAULT_MODEL
    #: A pooling mode here means "from scratch": keep only the base transformer, add new pooling.
    pooling: str | None = None
    normalize: bool = False
    data: str | None = None
    dev_data: str | None = None
    test_data: str | None = None
    skip_bad_rows: bool = False
    #: False keeps the test split unread, for tuning runs that must choose without looking at test.
    evaluate_test: bool = True
    max_seq_length: int | None = None
    #: Let a base model with only pickle weights (pytorch_model.bin) load; still via weights_only.
    allow_pickle: bool = False
    quiet: bool | None = None
    #: Save a resumable checkpoint (in ``OUTPUT.partial/``) every N steps and after each dev evaluation;
    #: None: only when SIGINT or SIGTERM stops the run.
    save_steps: int | None = None
    #: Keep the newest N checkpoints.
    save_total_limit: int = 2
    #: Continue from the latest checkpoint in ``OUTPUT.partial/`` instead of starting afresh.
    resume: bool = False
    #: False: never save checkpoints (one of several ``--seeds`` runs, which resume cannot continue).
    resumable: bool = True
    command: str = ""
    data_options: dict[str, Any] = field(default_factory=dict)
