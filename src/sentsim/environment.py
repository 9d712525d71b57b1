"""What this machine and this install are: offline mode, library versions, CPU capabilities, devices."""

from __future__ import annotations

import os


def is_offline() -> bool:
    return any(os.environ.get(name, "").strip().lower() in {"1", "true", "yes", "on"}
               for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "SENTSIM_OFFLINE"))
