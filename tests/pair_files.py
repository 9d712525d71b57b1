"""Pair files for the data tests: write one from rows, and expect a reader's error on it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sentsim.data import read_pair_file
from sentsim.errors import DataFormatError


def write_pairs(tmp_path: Path, fmt: str, rows: list[list[str]], *, name: str = "pairs") -> Path:
    """A pair file whose first row is the header; values are written as given (JSONL: as strings)."""
    path = tmp_path / f"{name}.{fmt}"
    if fmt == "jsonl":
        header, *data = rows
        text = "".join(json.dumps(dict(zip(header, row, strict=True))) + "\n" for row in data)
    else:
        delimiter = "," if fmt == "csv" else "\t"
        text = "".join(delimiter.join(row) + "\n" for row in rows)
    path.write_text(text, encoding="utf-8")
    return path


HEADER = ["sentence1", "sentence2", "score"]
GOOD = ["A dog runs.", "A dog is running.", "4.5"]


def expect_error(path: Path, line: int | None, fragment: str, **options: object) -> DataFormatError:
    with pytest.raises(DataFormatError) as caught:
        read_pair_file(path, **options)  # type: ignore[arg-type]
    message = str(caught.value)
    assert path.name in message
    if line is not None:
        assert f"line {line}:" in message
        assert caught.value.line == line
    assert fragment in message, message
    return caught.value
