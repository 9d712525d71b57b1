"""Generic pair files (CSV, TSV, JSONL; Parquet in `sentsim.data.parquet_files`), scored or not: choosing
the format by extension and reading the rows.

CSV and TSV need a header row naming the columns; JSONL needs one object per line with the same keys.
A ``.txt`` pair file is tab-separated text with a header and no quoting, as SICK and other STS sets
ship theirs: their sentences may begin with a quote mark, which a quoting reader would take as the
start of a field running over the following lines. A ``.tsv`` file is read the same way when it is
plain TSV (every line splits into the header's columns and no field is CSV-quoted, as STSb's own rows
written out as TSV are), and with CSV quoting only when it was written so (pandas' ``to_csv(sep="\t")``
quotes a field holding a quote, a tab or a line break).
Field checks and the skip-bad-rows policy live in `sentsim.data.pairs`, shared with the STS Benchmark;
scored and unscored files go through the same readers, so they fail with the same messages.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from sentsim.data.lines import SourceLine, read_lines
from sentsim.data.pairs import BadRow, PairCollector, PairDataset, RowCollector, TextPair, TextPairCollector
from sentsim.data.parquet_files import PARQUET, read_parquet_rows
from sentsim.errors import ConfigError, DataFormatError

_DELIMITERS = {".csv": ",", ".tsv": "\t", ".tab": "\t", ".txt": "\t"}
_UNQUOTED = {".txt"}
_JSONL = {".jsonl", ".ndjson"}
SUPPORTED_EXTENSIONS = (*_DELIMITERS, *sorted(_JSONL), PARQUET)


def read_pair_file(
    path: str | Path,
    *,
    sentence1_column: str = "sentence1",
    sentence2_column: str = "sentence2",
    score_column: str = "score",
    genre_column: str | None = None,
    score_range: tuple[float, float] = (0.0, 5.0),
    skip_bad_rows: bool = False,
) -> PairDataset:
    """Read scored pairs from a .csv, .tsv/.tab/.txt, .jsonl/.ndjson or .parquet file.

    Scores are normalised from the declared `score_range` to 0–1; a score outside it is an error, since
    it usually means the wrong column or scale. With `skip_bad_rows` malformed rows are recorded in
    `PairDataset.skipped`; an empty file, missing header columns or a file with no good row still raise.
    """
    path = _supported_path(path)
    collector = PairCollector(path, score_range=score_range, skip_bad_rows=skip_bad_rows)
    names = (sentence1_column, sentence2_column, score_column)
    _read_rows(path, collector, names=names, genre_column=genre_column)
    return collector.finish()


def read_text_pairs(
    path: str | Path,
    *,
    sentence1_column: str = "sentence1",
    sentence2_column: str = "sentence2",
    skip_bad_rows: bool = False,
) -> list[TextPair]:
    """Read unscored pairs (to be scored by a model) from a .csv, .tsv/.tab/.txt, .jsonl/.ndjson or .parquet file.

    Same formats, header rules and messages as `read_pair_file`; other columns, a gold score included,
    are ignored, so a scored file can be scored again. With `skip_bad_rows` malformed rows are left out
    (not reported back, since there is no dataset to hold them); an empty file, missing header columns or
    a file with no good row still raise.
    """
    path = _supported_path(path)
    collector = TextPairCollector(path, skip_bad_rows=skip_bad_rows)
    _read_rows(path, collector, names=(sentence1_column, sentence2_column), genre_column=None)
    return collector.finish()


def _supported_path(path: str | Path) -> Path:
    """The expanded path, checked for a known extension before anything is read."""
    path = Path(path).expanduser()
    suffix = format_suffix(path)
    if suffix not in SUPPORTED_EXTENSIONS:
        raise ConfigError(
            f"cannot tell the format of {path}: supported extensions are {', '.join(SUPPORTED_EXTENSIONS)}, "
            "each but .parquet also gzip-compressed (.jsonl.gz)"
        )
    return path


def format_suffix(path: Path) -> str:
    """The lower-case extension that names the format: ``.jsonl`` for ``test.jsonl.gz`` as for ``test.jsonl``."""
    suffixes = [suffix.lower() for suffix in path.suffixes]
    if suffixes and suffixes[-1] == ".gz":
        suffixes.pop()
    return suffixes[-1] if suffixes else ""


def _read_rows(
    path: Path,
    collector: RowCollector[Any],
    *,
    names: tuple[str, ...],
    genre_column: str | None,
) -> None:
    """Feed every row of `path` to `collector`, choosing the reader by extension."""
    suffix = format_suffix(path)
    if suffix == PARQUET:
        read_parquet_rows(path, collector, names=names, genre_column=genre_column, header_indices=_header_indices)
        return
    lines = read_lines(path)
    if not any(line.text.strip() for line in lines):
        raise DataFormatError(path, None, "file is empty")
    if suffix in _JSONL:
        _read_jsonl(lines, collector, names=names, genre_column=genre_column)
    else:
        if suffix in _UNQUOTED:
            _require_tab(path, lines)
        _read_delimited(lines, collector, options=csv_options(suffix, lines), names=names, genre_column=genre_column)


def csv_options(suffix: str, lines: Sequence[SourceLine] = ()) -> dict[str, Any]:
    """The ``csv.reader`` options for a delimited pair file with this (lower-case) extension and these lines."""
    unquoted = suffix in _UNQUOTED or (_DELIMITERS[suffix] == "\t" and _plain_tsv(lines))
    return {"delimiter": _DELIMITERS[suffix], "quoting": csv.QUOTE_NONE if unquoted else csv.QUOTE_MINIMAL}


#: A CSV-quoted field: wrapped in quotes, with the quotes inside doubled (and at least one of them).
_CSV_QUOTED = re.compile(r'"(?:[^"]|"")*""(?:[^"]|"")*"')


def _plain_tsv(lines: Sequence[SourceLine]) -> bool:
    """Whether tab-separated ``lines`` read better as plain TSV, with no quoting, than with CSV quoting.

    Each reading is counted for its bad records: rows of another width than the header's and, read with
    quoting, each tab inside a field, which is a row swallowed by a quote mark that opened a sentence. The
    plain reading wins ties, as TSV has no quoting; a CSV-quoted field (wrapped, inner quotes doubled,
    as pandas writes one) tips a tie the other way. Read with quoting by mistake, ``"Hello," he said.``
    loses its quotes and a sentence opening with a quote swallows the lines after it; read plainly by
    mistake, a quoted field keeps its quote marks.
    """
    texts = [line.text for line in lines if line.text.strip()]
    if not texts:
        return False
    rows = [text.rstrip("\r\n").split("\t") for text in texts]
    width = len(rows[0])
    plain_bad = sum(len(row) != width for row in rows[1:])
    try:
        quoted = list(csv.reader(texts, delimiter="\t"))
    except csv.Error:
        return True
    quoted_bad = sum(len(row) != len(quoted[0]) for row in quoted[1:]) + \
        sum(field.count("\t") for row in quoted[1:] for field in row)
    if any(_CSV_QUOTED.fullmatch(field) for row in rows for field in row):
        return plain_bad < quoted_bad
    return plain_bad <= quoted_bad


def _require_tab(path: Path, lines: list[SourceLine]) -> None:
    """A .txt pair file must be tab-separated: say so at its first line rather than report a missing column."""
    first = next(line for line in lines if line.text.strip())
    if "\t" not in first.text:
        raise DataFormatError(path, first.number, "a .txt pair file is read as tab-separated text with a header row "
                              "(as SICK's), but this line has no tab; name a comma-separated file .csv and a "
                              "JSON-lines file .jsonl")


def _read_jsonl(
    lines: list[SourceLine],
    collector: RowCollector[Any],
    *,
    names: tuple[str, ...],
    genre_column: str | None,
) -> None:
    labels = _labels("key", names)
    for line in lines:
        if not line.text.strip():
            continue
        with collector.row(line.number):
            if line.decode_error:
                raise BadRow(line.decode_error)
            try:
                record = json.loads(line.text.rstrip("\r\n"))  # so the error column is on this line
            except json.JSONDecodeError as exc:
                raise BadRow(f"invalid JSON: {exc.msg} at column {exc.colno}") from None
            if not isinstance(record, dict):
                raise BadRow(f"expected a JSON object on each line, found {_json_type(record)}")
            missing = [name for name in names if name not in record]
            if missing:
                raise BadRow(f"missing {_quoted(missing, 'key')}; found keys: {_quoted(list(record)) or 'none'}"
                             + _column_hint(missing, list(record)))
            genre = record.get(genre_column) if genre_column else None
            collector.add_fields(
                line=line.number,
                fields=[record[name] for name in names],
                genre=str(genre) if genre is not None else None,
                columns=labels,
            )


def _read_delimited(
    lines: list[SourceLine],
    collector: RowCollector[Any],
    *,
    options: dict[str, Any],
    names: tuple[str, ...],
    genre_column: str | None,
) -> None:
    """Read CSV or TSV with the csv module, so quoted fields (with commas, tabs or newlines) work.

    A record may span several physical lines inside quotes; it is reported at the line where it starts,
    and a bad byte anywhere in it makes the record bad. ``options`` are ``csv.reader``'s (`csv_options`).
    """
    labels = _labels("column", names)
    header: list[str] | None = None
    header_line = 0
    indices: list[int] = []
    genre_index: int | None = None
    for start, consumed, row, error in _csv_records(lines, options):
        if header is None:
            if error:
                raise DataFormatError(collector.path, start, f"header row: {error}")
            assert row is not None
            header, header_line = [field.strip() for field in row], start
            indices = _header_indices(collector.path, header_line, header, names)
            if genre_column is not None:
                genre_index = _header_indices(collector.path, header_line, header, (genre_column,))[0]
            continue
        with collector.row(start):
            if error:
                raise BadRow(error)
            assert row is not None
            if len(row) != len(header):
                hint = f" (the record runs to line {consumed}: an unbalanced quote?)" if consumed > start else ""
                raise BadRow(f"expected {len(header)} columns as in the header, found {len(row)}{hint}")
            collector.add_fields(
                line=start,
                fields=[row[index] for index in indices],
                genre=row[genre_index].strip() if genre_index is not None else None,
                columns=labels,
            )
    if header is None:  # pragma: no cover - read_pair_file rejects blank files before this
        raise DataFormatError(collector.path, None, "file is empty")
    if not collector.pairs and not collector.skipped:
        raise DataFormatError(collector.path, None, f"no data rows after the header on line {header_line}")


def _csv_records(lines: list[SourceLine],
                 options: dict[str, Any]) -> Iterator[tuple[int, int, list[str] | None, str | None]]:
    """(first line, last line, fields, error) per record, blank lines left out; fields is None when unparsable.

    The error is the csv module's (reworded) or the first bad byte's anywhere in the record.
    """
    reader = csv.reader((line.text for line in lines), **options)
    consumed = 0  # physical lines the csv reader has taken so far
    while True:
        start = consumed + 1
        try:
            row = next(reader)
            error = None
        except StopIteration:
            return
        except csv.Error as exc:
            # The csv module's own wording ("open the file in universal-newline mode") misleads here:
            # lines are already split, so this only means a lone carriage return inside a field.
            detail = "a stray carriage return (\\r) inside an unquoted field" if "new-line" in str(exc) else exc
            row, error = None, f"cannot parse the row: {detail}"
        consumed = reader.line_num
        if row is not None and len(row) <= 1 and not "".join(row).strip():
            continue  # a blank line; a row of empty fields is reported as empty sentences instead
        decode_error = next((line.decode_error for line in lines[start - 1 : consumed] if line.decode_error), None)
        yield start, consumed, row, error or decode_error


def _header_indices(path: str, line: int, header: list[str], names: Sequence[str]) -> list[int]:
    """Column positions of `names`; matched exactly first, then ignoring case, so 'Score' finds 'score'."""
    indices: list[int] = []
    missing: list[str] = []
    for name in names:
        exact = [i for i, column in enumerate(header) if column == name]
        matches = exact or [i for i, column in enumerate(header) if column.casefold() == name.casefold()]
        if not matches:
            missing.append(name)
        elif len(matches) > 1:
            raise DataFormatError(path, line, f"column {name!r} appears {len(matches)} times in the header")
        else:
            indices.append(matches[0])
    if missing:
        raise DataFormatError(
            path,
            line,
            f"header lacks {_quoted(missing, 'column')}; found columns: {_quoted(header) or 'none'}"
            + (_separator_hint(path, header) or _column_hint(missing, header)),
        )
    return indices


#: Separators a one-column header may hold: their names, and the extension that reads each (None: none does).
_SEPARATORS = {"\t": ("tabs", ".tsv"), ",": ("commas", ".csv"), ";": ("semicolons", None), "|": ("vertical bars", None)}


def _separator_hint(path: str, header: list[str]) -> str:
    """For a header read as one column that holds another separator: which one, and what reads it.

    Why: a semicolon CSV (spreadsheets in many locales) or a TSV named .csv otherwise gets only
    "found columns: 'sentence1;sentence2;score'", and the user has to spot the cause themselves.
    """
    suffix = format_suffix(Path(path))
    found = next((separator for separator in _SEPARATORS if separator in header[0]), None) if len(header) == 1 else None
    if found is None or suffix not in _DELIMITERS:
        return ""
    name, extension = _SEPARATORS[found]
    expected = _SEPARATORS[_DELIMITERS[suffix]][0]
    fix = f"name it {extension}" if extension else "save it comma-separated (.csv) or tab-separated (.tsv)"
    return f" (it is split by {name}, but {suffix} files are read split by {expected}: {fix})"


#: Column names other STS sets use (SICK, PAWS, Quora, MRPC, Hugging Face datasets), by role, so a
#: header error can say which option names them. Only the default names get a hint.
_ROLE_ALIASES = {
    "sentence1": ("sentence_a", "sentence_1", "text1", "text_a", "s1", "premise", "question1", "query", "anchor"),
    "sentence2": ("sentence_b", "sentence_2", "text2", "text_b", "s2", "hypothesis", "question2", "positive"),
    "score": ("relatedness_score", "similarity_score", "similarity", "gold_score", "gold", "label", "labels",
              "relatedness"),
}


def _column_hint(missing: Sequence[str], header: Sequence[str]) -> str:
    """Where the header has a column another STS set uses for a missing default name: the options that pick
    it, as the command line spells them and as keyword arguments (``sentence1_column='sentence_A'``)."""
    found = {column.casefold(): column for column in header}
    options: list[tuple[str, str]] = []
    for name in missing:
        alias = next((found[alias] for alias in _ROLE_ALIASES.get(name, ()) if alias in found), None)
        if alias is not None:
            options.append((f"{name}_column", alias))
    if not options:
        return ""
    flags = " ".join(f"--{option.replace('_', '-')} {alias}" for option, alias in options)
    keywords = ", ".join(f"{option}={alias!r}" for option, alias in options)
    scale = "; and --score-range LOW HIGH (score_range=) if its scores are not on 0–5" if "score" in missing else ""
    return f" (to use this file's fields: {flags}, or in Python {keywords}{scale})"


def _labels(kind: str, names: tuple[str, ...]) -> tuple[str, ...]:
    """How the fields are named in messages: "column 'score'" for CSV, "key 'score'" for JSONL."""
    return tuple(f"{kind} {name!r}" for name in names)


def _quoted(names: Sequence[str], noun: str | None = None) -> str:
    listed = ", ".join(repr(name) for name in names)
    if noun is None:
        return listed
    return f"{noun}{'s' if len(names) > 1 else ''} {listed}"


def _json_type(value: object) -> str:
    kinds = {list: "an array", str: "a string", bool: "a boolean", int: "a number", float: "a number"}
    return "null" if value is None else kinds.get(type(value), type(value).__name__)
