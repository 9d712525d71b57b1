"""Parquet pair files: how datasets on the Hugging Face Hub are stored (``train-00000-of-00001.parquet``).

A user who downloads ``sentence-transformers/stsb`` or their own pushed dataset gets Parquet files, not
CSV; converting them first is a step where scores and texts get mangled. The rows go through the same
collectors as CSV and JSONL (same checks, same ``--skip-bad-rows``), the columns are matched as CSV
headers are (case-insensitively, with the same hints for other sets' names), and a row is reported by
its number in the file, counted from 1, in the place of a line number. Reading needs ``pyarrow``
(``pip install "sentsim[parquet]"``), imported only here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sentsim.data.pairs import RowCollector
from sentsim.errors import ConfigError, DataFormatError

PARQUET = ".parquet"


def read_parquet_rows(path: Path, collector: RowCollector[Any], *, names: tuple[str, ...], genre_column: str | None,
                      header_indices: Any) -> None:
    """Feed every row of the Parquet file ``path`` to ``collector`` (``header_indices`` is the CSV reader's
    column matcher, passed in so both formats find and explain columns alike)."""
    table = _read_table(path)
    header = [str(name) for name in table.column_names]
    indices = header_indices(str(path), None, header, names)
    genre_index = header_indices(str(path), None, header, (genre_column,))[0] if genre_column else None
    columns = {index: table.column(index).to_pylist() for index in {*indices, *([genre_index] if genre_index
                                                                                  is not None else [])}}
    labels = tuple(f"column {name!r}" for name in names)
    if table.num_rows == 0:
        raise DataFormatError(path, None, "no data rows")
    for row in range(table.num_rows):
        with collector.row(row + 1):
            genre = columns[genre_index][row] if genre_index is not None else None
            collector.add_fields(line=row + 1, fields=[_plain(columns[index][row]) for index in indices],
                                 genre=None if genre is None else str(genre), columns=labels)


def parquet_columns(path: Path) -> list[str]:
    """The column names of a Parquet file, from its schema alone."""
    pq = _pyarrow_parquet(path)
    try:
        return [str(name) for name in pq.read_schema(path).names]
    except (OSError, ValueError) as error:  # pyarrow's ArrowInvalid is a ValueError
        raise DataFormatError(path, None, f"not a readable Parquet file ({error})") from None


def _read_table(path: Path) -> Any:
    pq = _pyarrow_parquet(path)
    try:
        return pq.read_table(path)
    except (OSError, ValueError) as error:  # pyarrow's ArrowInvalid is a ValueError
        raise DataFormatError(path, None, f"not a readable Parquet file ({error})") from None


def _pyarrow_parquet(path: Path) -> Any:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise ConfigError(f"reading {path} needs pyarrow, which is not installed: pip install \"sentsim[parquet]\" "
                          "(or save the pairs as .csv, .tsv or .jsonl)") from None
    return pq


def _plain(value: object) -> object:
    """Arrow's values as the other readers give them: texts as str, scores as numbers (a decimal too);
    anything else (a list, bytes, a date) is passed on and refused by the field checks with its type."""
    if value is not None and type(value).__name__ == "Decimal":
        return float(value)  # type: ignore[arg-type]
    return value
