"""A data file's lines, each decoded on its own: the first step of every reader in this package.

Why per line: decoding a whole file at once could only say "byte 48213" of a bad byte; per line a
reader can name the line and the byte within it, and go on past it when asked to skip bad rows.
"""

from __future__ import annotations

import errno
import gzip
import io
import zlib
from dataclasses import dataclass
from pathlib import Path

from sentsim.errors import ConfigError, DataFormatError


@dataclass(frozen=True, slots=True)
class SourceLine:
    """One physical line of a file, decoded on its own so a bad byte is reported on its own line."""

    number: int  # 1-based
    text: str  # keeps its line ending; the csv module needs it to see quoted newlines
    decode_error: str | None = None  # set when the bytes were not UTF-8; `text` then holds replacements


def dangling_symlink(path: Path) -> str | None:
    """What is wrong with ``path`` as a symbolic link that leads nowhere (broken, or a loop), else None.

    ``Path.exists`` answers False for both, so a loop was called broken, which sends a user looking
    for a missing target instead of at the links.
    """
    if not path.is_symlink():
        return None
    try:
        path.stat()
    except OSError as error:
        return "loops through symbolic links" if error.errno == errno.ELOOP else "is a broken symbolic link"
    return None


def not_a_file(path: Path) -> str:
    """Why ``path`` cannot be read as a data file, in a few words: missing, a folder, a device or pipe."""
    if (link := dangling_symlink(path)) is not None:
        return f"{path}: {link}"
    if path.is_dir():
        return f"{path}: is a folder, not a file"
    if path.exists() and not path.is_file():
        return f"{path}: is not a regular file (a device, pipe or socket); save the data to a file first"
    return f"no such file: {path}"


def read_lines(path: Path) -> list[SourceLine]:
    """Read `path` as bytes and decode each line as UTF-8 separately; gzip-compressed files are unpacked.

    Decoding the whole file at once would only say "byte 48213"; per line we can name the line and the
    byte within it. A UTF-8 byte-order mark (common in spreadsheet exports) is dropped. A file is
    unpacked when it starts with gzip's magic bytes (no UTF-8 text can: 0x8b is a continuation byte),
    whatever its name: MTEB's STS sets on the Hugging Face Hub are ``.jsonl.gz``.
    """
    if not path.is_file():
        raise ConfigError(not_a_file(path))
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(not_a_file(path)) from None
    except OSError as exc:
        raise DataFormatError(path, None, f"cannot read the file: {exc.strerror or exc}") from None
    where = "in the file"
    if raw.startswith(GZIP_MAGIC):
        raw, where = _gunzip(path, raw), "in the unpacked file"
    elif path.name.lower().endswith(".gz"):
        raise DataFormatError(path, None, "named .gz but not gzip-compressed; rename it without .gz")
    if _utf16(raw):
        raise DataFormatError(path, None, "the file is UTF-16 text (a byte-order mark or NUL bytes between the "
                              "letters, as Excel's 'Unicode Text' and PowerShell write it); save it as UTF-8")
    start = 3 if raw.startswith(b"\xef\xbb\xbf") else 0
    lines: list[SourceLine] = []
    number = 0
    while start < len(raw):
        end = raw.find(b"\n", start)
        end = len(raw) if end == -1 else end + 1
        chunk = raw[start:end]
        number += 1
        try:
            lines.append(SourceLine(number, chunk.decode("utf-8")))
        except UnicodeDecodeError as exc:
            reason = (
                f"not valid UTF-8: byte 0x{chunk[exc.start]:02x} at byte offset {exc.start} of the line "
                f"(offset {start + exc.start} {where}); save the file as UTF-8"
            )
            lines.append(SourceLine(number, chunk.decode("utf-8", errors="replace"), reason))
        start = end
    return lines


GZIP_MAGIC = b"\x1f\x8b"
#: Bytes a gzip file may always unpack to (see `_gunzip`).
GZIP_MIN_LIMIT = 1 << 30


def _gunzip(path: Path, raw: bytes) -> bytes:
    """The unpacked bytes of a gzip file (all members), or a DataFormatError saying what is wrong with it.

    Unpacking stops past 1 GiB or 200 times the packed size, whichever is larger: text packs 3–10
    times, so more is a decompression bomb, which would otherwise take the machine's memory.
    """
    limit = max(GZIP_MIN_LIMIT, 200 * len(raw))
    try:
        with gzip.GzipFile(fileobj=io.BytesIO(raw)) as packed:
            unpacked = packed.read(limit + 1)
    except (OSError, EOFError, zlib.error) as exc:  # BadGzipFile is an OSError; a cut file is an EOFError
        detail = str(exc) or "the compressed data ends early"
        raise DataFormatError(path, None, f"cannot unpack this gzip file: {detail}") from None
    if len(unpacked) > limit:
        raise DataFormatError(path, None, f"unpacks to more than {limit:,} bytes from {len(raw):,}: not a pair file "
                              "sentsim will unpack (a decompression bomb?)")
    return unpacked


def _utf16(raw: bytes) -> bool:
    """UTF-16 text: its byte-order mark, or (without one) a NUL in every other byte of the first line's text."""
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        return True
    head = raw[:200]
    return len(head) >= 8 and any(half.count(0) > 0.8 * len(half) for half in (head[0::2], head[1::2]))

