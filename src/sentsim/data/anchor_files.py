"""Unscored training files for in-batch-negative losses: ``anchor``, ``positive`` and optional ``negative`` columns.

Same formats (CSV, TSV, JSONL), header rules, row checks and messages as the scored pair files: the rows
go through the shared readers of `sentsim.data.pair_files`; only what a row becomes differs.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from sentsim.data.lines import read_lines
from sentsim.data.pair_files import _JSONL, _read_rows, _supported_path, csv_options, format_suffix
from sentsim.data.pairs import RowCollector, check_sentence
from sentsim.data.parquet_files import PARQUET, parquet_columns
from sentsim.errors import DataFormatError


@dataclass(frozen=True, slots=True)
class AnchorPositive:
    """One training row: an anchor, a text that matches it, and optionally a hard negative."""

    anchor: str
    positive: str
    negative: str | None = None
    line: int | None = None


@dataclass
class AnchorPositiveDataset:
    """The rows of one file, in file order."""

    rows: list[AnchorPositive]
    source: str

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def anchors(self) -> list[str]:
        return [row.anchor for row in self.rows]

    @property
    def positives(self) -> list[str]:
        return [row.positive for row in self.rows]

    # The names a scored PairDataset uses, so the training run reads either kind of training set.
    sentences1 = anchors
    sentences2 = positives
    scores = None

    @property
    def negatives(self) -> list[str] | None:
        """Hard negatives, or None when the file has no negative column."""
        return None if self.rows[0].negative is None else [str(row.negative) for row in self.rows]


class AnchorCollector(RowCollector[AnchorPositive]):
    def add_fields(self, *, line: int, fields: Sequence[object], genre: str | None, columns: Sequence[str]) -> None:
        texts = [check_sentence(value, column=column) for value, column in zip(fields, columns, strict=True)]
        self.pairs.append(AnchorPositive(texts[0], texts[1], texts[2] if len(texts) > 2 else None, line=line))

    def finish(self) -> list[AnchorPositive]:
        self._require_pairs()
        return self.pairs


def read_anchor_positive_file(path: str | Path, *, anchor_column: str = "anchor", positive_column: str = "positive",
                              negative_column: str = "negative", skip_bad_rows: bool = False) -> AnchorPositiveDataset:
    """Read (anchor, positive[, negative]) rows from a .csv, .tsv/.tab/.txt, .jsonl/.ndjson or .parquet file.

    The negative column is used when the header (or the first JSON object) has it; then every row needs
    one. Missing columns, empty texts and malformed rows fail with file and line, as for scored files.
    """
    path = _supported_path(path)
    names: tuple[str, ...] = (anchor_column, positive_column)
    if _has_column(path, negative_column):
        names = (*names, negative_column)
    collector = AnchorCollector(path, skip_bad_rows=skip_bad_rows)
    _read_rows(path, collector, names=names, genre_column=None)
    return AnchorPositiveDataset(rows=collector.finish(), source=str(path))


def _has_column(path: Path, name: str) -> bool:
    """Whether the header row (CSV/TSV), the first object (JSONL) or the schema (Parquet) names ``name``;
    False if unreadable."""
    if format_suffix(path) == PARQUET:
        return _names(parquet_columns(path), name)
    lines = [line for line in read_lines(path) if line.text.strip()]
    if not lines:
        raise DataFormatError(path, None, "file is empty")
    first = lines[0].text
    if format_suffix(path) in _JSONL:
        try:
            record = json.loads(first)
        except json.JSONDecodeError:
            return False  # the reader reports the bad line itself
        return isinstance(record, dict) and name in record
    try:
        header = next(csv.reader([first], **csv_options(format_suffix(path))), [])
    except csv.Error:
        return False  # a stray carriage return in the header: the reader reports that line itself
    return _names(header, name)


def _names(header: Sequence[str], name: str) -> bool:
    """Whether a header holds ``name``, matched as the readers match columns (trimmed, any case)."""
    return any(column.strip().casefold() == name.casefold() for column in header)
