"""The evaluators' results CSV, as sentence-transformers keeps it: one file per evaluator, a row per call."""

from __future__ import annotations

import csv
import os
from collections.abc import Sequence
from typing import Any


def append_row(output_path: str, file_name: str, headers: Sequence[str], row: Sequence[Any]) -> None:
    """Appends ``row`` to ``output_path/file_name``, writing ``headers`` first when the file is new."""
    os.makedirs(output_path, exist_ok=True)
    path = os.path.join(output_path, file_name)
    exists = os.path.isfile(path)
    with open(path, "a" if exists else "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        if not exists:
            writer.writerow(headers)
        writer.writerow(row)
