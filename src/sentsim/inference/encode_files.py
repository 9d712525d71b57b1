"""Reading a text file of sentences, one per line, with the same line rules as ``sentsim encode``."""

from __future__ import annotations

from pathlib import Path

from sentsim.inference.encode_stream import read_line_chunks, scan_lines


def read_sentence_file(path: str | Path, *, allow_blank: bool = False) -> list[str]:
    """Every line of a UTF-8 text file, split at ``\\n`` only, as ``sentsim encode`` reads it.

    Line *i* of the file is row *i - 1* here, exactly as in the ``.npy`` that ``sentsim encode``
    writes, so a corpus text file and its encoded matrix stay aligned (``sentsim search`` relies on it).

    Raises:
        ConfigError: a missing file or one without any sentence.
        DataFormatError: bytes that are not UTF-8, or blank lines unless ``allow_blank`` (their numbers named).
    """
    scan_lines(path, allow_blank=allow_blank)
    return [text for _, chunk in read_line_chunks(path) for text in chunk]
