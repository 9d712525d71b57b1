"""read_sentence_file (the corpus and query reader of search/dedup) keeps encode's line rules."""

from __future__ import annotations

import pytest

from sentsim.errors import DataFormatError
from sentsim.inference.encode_files import read_sentence_file


def test_lines_split_at_newline_only_so_rows_match_encode(tmp_path):
    path = tmp_path / "corpus.txt"
    path.write_text("first\x85still first\nsecond\u2028half\r\nthird\fpart\n", encoding="utf-8")
    assert read_sentence_file(path) == ["first\x85still first", "second\u2028half", "third\fpart"]


def test_blank_lines_are_refused_with_their_numbers_unless_allowed(tmp_path):
    path = tmp_path / "corpus.txt"
    path.write_text("one\n\nthree\n", encoding="utf-8")
    with pytest.raises(DataFormatError, match="line 2"):
        read_sentence_file(path)
    assert read_sentence_file(path, allow_blank=True) == ["one", "", "three"]
