"""Encoding a text file of any size, one row per line, into ``.npy`` or JSONL in bounded memory.

The file is read twice: a first pass counts the lines and checks them (UTF-8, blank lines) before
the model runs, so bad input fails in a second and the ``.npy`` header can state the final shape;
the second pass encodes chunk by chunk and appends each chunk's rows to a hidden temporary file
that is renamed over the output only when every line is written. Memory holds one chunk of lines
and its embeddings, never the file or the matrix.

Lines are split at ``\\n`` only (``\\r\\n`` endings lose their ``\\r``): ``str.splitlines`` would
also split at ``\\f``, ``\\x1c``, ``\\x85`` or U+2028 inside a sentence, and rows would stop matching
lines. A final line without a newline counts; a UTF-8 byte-order mark is dropped.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from sentsim.data.lines import not_a_file
from sentsim.errors import ConfigError, DataFormatError
from sentsim.inference.pairs import encode_sentences
from sentsim.persistence.atomic import atomic_open
from sentsim.progress import ProgressLog

__all__ = ["CHUNK_LINES", "OUTPUT_FORMATS", "EncodedLines", "LineScan", "default_output", "encode_lines",
           "output_format", "read_line_chunks", "scan_lines"]

#: Lines encoded at a time: large enough to keep batches full, small enough to bound memory.
CHUNK_LINES = 10_000
#: Output file suffix → format.
OUTPUT_FORMATS = {".npy": "npy", ".jsonl": "jsonl"}
_BLANKS_NAMED = 10


@dataclass(frozen=True)
class LineScan:
    """What the first pass found: the number of lines and the (first few) blank ones."""

    path: Path
    lines: int
    blank_count: int = 0
    blank_lines: list[int] = field(default_factory=list)


@dataclass(frozen=True)
class EncodedLines:
    output: Path
    rows: int
    dimension: int
    format: str


def default_output(path: str | Path) -> Path:
    """``FILE`` with the ``.npy`` suffix; ``NAME.embeddings.npy`` when that would be ``FILE`` itself."""
    path = Path(path)
    output = path.with_suffix(".npy")
    return output if output != path else path.with_name(f"{path.stem}.embeddings.npy")


def output_format(path: str | Path) -> str:
    """``npy`` or ``jsonl``, by the suffix of ``path``; anything else is a ConfigError."""
    suffix = Path(path).suffix.lower()
    if suffix not in OUTPUT_FORMATS:
        raise ConfigError(f"{path}: the output must end in .npy or .jsonl (an embedding per line, with its "
                          "line number as id)")
    return OUTPUT_FORMATS[suffix]


def _decoded_lines(path: Path) -> Iterator[tuple[int, str]]:
    """(line number, text) of each line, split at ``\\n`` only; bytes that are not UTF-8 are a DataFormatError."""
    try:
        handle = open(path, "rb")  # noqa: SIM115 (closed below; a generator cannot use with around yield)
    except OSError as error:
        raise ConfigError(f"{path}: cannot be read ({error.strerror})") from error
    with handle:
        for number, raw in enumerate(handle, start=1):  # binary files iterate at b"\n" only
            if raw.endswith(b"\n"):
                raw = raw[:-2] if raw.endswith(b"\r\n") else raw[:-1]
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as error:
                raise DataFormatError(path, number, f"not UTF-8 text ({error.reason} at byte {error.start} of "
                                                    "the line)") from error
            yield number, text.removeprefix("\ufeff") if number == 1 else text


def scan_lines(path: str | Path, *, allow_blank: bool = False) -> LineScan:
    """Counts and checks the lines of ``path`` without keeping them.

    Raises:
        ConfigError: a missing file, or no line at all.
        DataFormatError: bytes that are not UTF-8 (file and line named); blank lines unless
            ``allow_blank`` (their numbers named, so they can be fixed or the flag given).
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(not_a_file(path))
    lines = blank_count = 0
    blanks: list[int] = []
    for number, text in _decoded_lines(path):
        lines = number
        if not text.strip():
            blank_count += 1
            if len(blanks) < _BLANKS_NAMED:
                blanks.append(number)
    if blank_count == lines:
        raise ConfigError(f"{path}: no sentences (the file is empty)" if lines == 0 else
                          f"{path}: no sentences (all {lines} lines are blank)")
    if blank_count and not allow_blank:
        named = ", ".join(map(str, blanks)) + (f" and {blank_count - len(blanks)} more" if blank_count > len(blanks)
                                                else "")
        raise DataFormatError(path, blanks[0], f"{blank_count} blank line(s) (lines {named}); every line becomes a "
                                               "row, so remove them or pass --allow-blank to encode them as empty "
                                               "text")
    return LineScan(path=path, lines=lines, blank_count=blank_count, blank_lines=blanks)


def read_line_chunks(path: str | Path, *, chunk_lines: int = CHUNK_LINES) -> Iterator[tuple[int, list[str]]]:
    """(first line number, lines) of ``path`` in chunks of at most ``chunk_lines``."""
    if chunk_lines < 1:
        raise ConfigError(f"chunk size must be positive, got {chunk_lines}")
    chunk: list[str] = []
    first = 1
    for number, text in _decoded_lines(Path(path)):
        if not chunk:
            first = number
        chunk.append(text)
        if len(chunk) == chunk_lines:
            yield first, chunk
            chunk = []
    if chunk:
        yield first, chunk


def _write_npy_rows(handle: BinaryIO, rows: np.ndarray, *, total: int, written: int) -> None:
    if written == 0:  # the header states the final shape, known from the first pass
        np.lib.format.write_array_header_1_0(handle, {"descr": np.lib.format.dtype_to_descr(np.dtype("<f4")),
                                                      "fortran_order": False, "shape": (total, rows.shape[1])})
    handle.write(np.ascontiguousarray(rows, dtype="<f4").tobytes())


def _write_jsonl_rows(handle: BinaryIO, rows: np.ndarray, *, first_line: int) -> None:
    handle.write("".join(json.dumps({"id": first_line + offset, "embedding": row})
                         + "\n" for offset, row in enumerate(rows.tolist())).encode("utf-8"))


def encode_lines(
    model: Any,
    scan: LineScan,
    output: str | Path,
    *,
    chunk_lines: int = CHUNK_LINES,
    batch_size: int = 64,
    normalize: bool = False,
    dtype: str = "auto",
    quiet: bool | None = None,
) -> EncodedLines:
    """Encodes every line that ``scan`` counted and writes the rows to ``output`` (``.npy`` or ``.jsonl``).

    ``.npy`` holds a float32 ``(lines, dim)`` matrix; ``.jsonl`` one ``{"id": line number,
    "embedding": [...]}`` object per line. The output appears only when complete.

    Raises:
        DataFormatError: the file changed between the two passes (its line count differs).
    """
    output = Path(output)
    kind = output_format(output)
    progress = ProgressLog(scan.lines, desc=f"encoding {scan.path.name}", unit="lines", quiet=quiet)
    written, dimension = 0, 0
    with atomic_open(output) as handle:
        for first_line, lines in read_line_chunks(scan.path, chunk_lines=chunk_lines):
            if written + len(lines) > scan.lines:  # the file grew since the first pass
                written += len(lines)
                break
            lines = [line if line.strip() else "" for line in lines]  # blank ones only with allow_blank
            rows = np.asarray(encode_sentences(model, lines, batch_size=batch_size, normalize=normalize,
                                               dtype=dtype, show_progress=False), dtype=np.float32)
            if kind == "npy":
                _write_npy_rows(handle, rows, total=scan.lines, written=written)
            else:
                _write_jsonl_rows(handle, rows, first_line=first_line)
            written += len(lines)
            dimension = int(rows.shape[1])
            progress.update(len(lines))
        if written != scan.lines:
            raise DataFormatError(scan.path, None, f"changed while it was encoded ({scan.lines} lines at the "
                                                   "start, a different count now); nothing was written")
    progress.close()
    return EncodedLines(output=output, rows=written, dimension=dimension, format=kind)
