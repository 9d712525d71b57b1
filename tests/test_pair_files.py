"""Generic pair files (CSV, TSV, SICK-style .txt, JSON lines, gzip): reading, options, errors, hostile bytes."""

from __future__ import annotations

import gzip
import json
import warnings
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from sentsim.data import (
    ScoredPair,
    read_anchor_positive_file,
    read_pair_file,
    read_text_pairs,
)
from sentsim.data import lines as lines_module
from sentsim.errors import ConfigError, DataFormatError, ScoreScaleWarning, SentsimError

from .pair_files import GOOD, HEADER, expect_error, write_pairs

# --------------------------------------------------------------------------------------------------
# Generic pair files


@pytest.mark.parametrize("fmt", ["csv", "tsv", "jsonl"])
def test_pair_file_reads_and_normalises(tmp_path: Path, fmt: str) -> None:
    path = write_pairs(tmp_path, fmt, [HEADER, GOOD, ["B.", "C.", "0"], ["D.", "E.", "5"]])
    dataset = read_pair_file(path)
    assert dataset.scores.tolist() == [0.9, 0.0, 1.0]
    assert dataset.sentences1 == ["A dog runs.", "B.", "D."]
    assert [pair.line for pair in dataset] == ([1, 2, 3] if fmt == "jsonl" else [2, 3, 4])
    assert dataset.source == str(path)


@pytest.mark.parametrize("fmt", ["csv", "tsv", "jsonl"])
def test_custom_columns_range_and_genre(tmp_path: Path, fmt: str) -> None:
    path = write_pairs(tmp_path, fmt, [["Text A", "text_b", "label", "domain"], ["A.", "B.", "5.5", "news"]])
    dataset = read_pair_file(
        path,
        sentence1_column="Text A",
        sentence2_column="text_b",
        score_column="label",
        genre_column="domain",
        score_range=(1.0, 10.0),
    )
    assert dataset.scores.tolist() == [0.5] and dataset.genres == ["news"]


@pytest.mark.parametrize("fmt", ["csv", "tsv", "jsonl"])
@pytest.mark.parametrize(
    ("bad", "fragment"),
    [
        (["", "B.", "3"], "empty sentence in {kind} 'sentence1'"),
        (["A.", "   ", "3"], "empty sentence in {kind} 'sentence2'"),
        (["A.", "B.", "high"], "score 'high' in {kind} 'score' is not a number"),
        (["A.", "B.", "nan"], "is not a finite number"),
        (["A.", "B.", "7.5"], "score 7.5 in {kind} 'score' is outside the declared range 0–5"),
        (["A.", "B.", "-1"], "score -1 in {kind} 'score' is outside the declared range 0–5"),
    ],
)
def test_bad_field_values(tmp_path: Path, fmt: str, bad: list[str], fragment: str) -> None:
    path = write_pairs(tmp_path, fmt, [HEADER, GOOD, bad, GOOD])
    line = 2 if fmt == "jsonl" else 3
    expect_error(path, line, fragment.format(kind="key" if fmt == "jsonl" else "column"))
    # The same file with skipping: the bad row is recorded, the good ones kept.
    dataset = read_pair_file(path, skip_bad_rows=True)
    assert len(dataset) == 2
    assert [row.line for row in dataset.skipped] == [line]
    assert dataset.skipped[0].reason in str(expect_error(path, line, ""))
    assert dataset.skipped_summary().startswith(f"skipped 1 bad row in {path} (line {line}: ")


@pytest.mark.parametrize("fmt", ["csv", "tsv"])
def test_wrong_column_count(tmp_path: Path, fmt: str) -> None:
    path = write_pairs(tmp_path, fmt, [HEADER, GOOD, ["A.", "B."], ["A.", "B.", "1", "extra"]])
    expect_error(path, 3, "expected 3 columns as in the header, found 2")
    dataset = read_pair_file(path, skip_bad_rows=True)
    assert [row.line for row in dataset.skipped] == [3, 4]
    assert "found 4" in dataset.skipped[1].reason


@pytest.mark.parametrize("fmt", ["csv", "tsv"])
def test_missing_header_column(tmp_path: Path, fmt: str) -> None:
    path = write_pairs(tmp_path, fmt, [["sentence1", "text2", "score"], GOOD])
    error = expect_error(path, 1, "header lacks column 'sentence2'; found columns: 'sentence1', 'text2', 'score'")
    # Skipping bad rows does not excuse a bad header.
    expect_error(path, 1, "header lacks", skip_bad_rows=True)
    assert error.reason.startswith("header lacks")


def test_a_header_from_another_sts_set_gets_the_options_that_read_it(tmp_path: Path) -> None:
    """SICK's columns: the error names the options, and with them (and SICK's 1–5 scale) the file reads."""
    path = tmp_path / "sick.tsv"
    path.write_text("pair_ID\tsentence_A\tsentence_B\trelatedness_score\tentailment_judgment\n"
                    "1\tA dog runs\tA dog is running\t4.5\tENTAILMENT\n2\tA cat\tA car\t1.0\tNEUTRAL\n")
    error = expect_error(path, 1, "--sentence1-column sentence_A --sentence2-column sentence_B --score-column "
                                  "relatedness_score")
    assert "sentence1_column='sentence_A'" in error.reason and "--score-range" in error.reason
    dataset = read_pair_file(path, sentence1_column="sentence_A", sentence2_column="sentence_B",
                             score_column="relatedness_score", score_range=(1.0, 5.0))
    assert [pair.score for pair in dataset.pairs] == [0.875, 0.0]
    custom = tmp_path / "custom.csv"
    custom.write_text("left,right,score\na,b,1\n")
    plain = expect_error(custom, 1, "header lacks columns 'sentence1', 'sentence2'")
    assert "to use this file's fields" not in plain.reason  # nothing known to suggest
    lines = tmp_path / "pairs.jsonl"
    lines.write_text('{"text1": "a", "text2": "b", "label": 0.5}\n')
    expect_error(lines, 1, "--sentence1-column text1 --sentence2-column text2 --score-column label")


@pytest.mark.parametrize(("name", "text", "fragment"), [
    ("semi.csv", "sentence1;sentence2;score\na;b;1\n",
     "(it is split by semicolons, but .csv files are read split by commas: save it comma-separated (.csv) or "
     "tab-separated (.tsv))"),
    ("tabs.csv", "sentence1\tsentence2\tscore\na\tb\t1\n",
     "(it is split by tabs, but .csv files are read split by commas: name it .tsv)"),
    ("commas.tsv", "sentence1,sentence2,score\na,b,1\n",
     "(it is split by commas, but .tsv files are read split by tabs: name it .csv)"),
])
def test_a_header_split_by_another_separator_names_it(tmp_path: Path, name: str, text: str, fragment: str) -> None:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    expect_error(path, 1, fragment)


def test_header_matches_case_insensitively(tmp_path: Path) -> None:
    path = write_pairs(tmp_path, "csv", [["Sentence1", "SENTENCE2", "Score"], GOOD])
    assert len(read_pair_file(path)) == 1


def test_duplicate_header_column(tmp_path: Path) -> None:
    path = write_pairs(tmp_path, "csv", [["sentence1", "sentence2", "score", "score"], [*GOOD, "1"]])
    expect_error(path, 1, "column 'score' appears 2 times")


@pytest.mark.parametrize("fmt", ["csv", "tsv", "jsonl"])
def test_undecodable_bytes(tmp_path: Path, fmt: str) -> None:
    good = write_pairs(tmp_path, fmt, [HEADER, GOOD, ["A XX.", "B.", "1"]])
    path = good.with_name("latin1." + fmt)
    path.write_bytes(good.read_bytes().replace(b"XX", b"\xe9\xe9"))
    line = 2 if fmt == "jsonl" else 3
    offset = good.read_text().splitlines()[line - 1].index("XX")
    expect_error(path, line, f"not valid UTF-8: byte 0xe9 at byte offset {offset} of the line")
    assert read_pair_file(path, skip_bad_rows=True).skipped[0].line == line


def test_undecodable_header(tmp_path: Path) -> None:
    path = tmp_path / "pairs.csv"
    path.write_bytes(b"sentence1,sentence2,sc\xffore\nA.,B.,1\n")
    expect_error(path, 1, "header row: not valid UTF-8", skip_bad_rows=True)


@pytest.mark.parametrize("fmt", ["csv", "tsv", "jsonl"])
def test_empty_file(tmp_path: Path, fmt: str) -> None:
    path = tmp_path / f"empty.{fmt}"
    path.write_text("\n  \n", encoding="utf-8")
    expect_error(path, None, "file is empty", skip_bad_rows=True)


@pytest.mark.parametrize("fmt", ["csv", "tsv"])
def test_header_without_rows(tmp_path: Path, fmt: str) -> None:
    path = write_pairs(tmp_path, fmt, [HEADER])
    expect_error(path, None, "no data rows after the header on line 1", skip_bad_rows=True)


@pytest.mark.parametrize("fmt", ["csv", "tsv", "jsonl"])
def test_all_rows_bad_still_raises(tmp_path: Path, fmt: str) -> None:
    path = write_pairs(tmp_path, fmt, [HEADER, ["A.", "B.", "x"], ["A.", "B.", "9"]])
    expect_error(path, None, "no usable pairs: all 2 data rows are bad", skip_bad_rows=True)


def test_jsonl_specific_errors(tmp_path: Path) -> None:
    good = json.dumps(dict(zip(HEADER, GOOD, strict=True)))
    cases = {
        '{"sentence1": "A.",': "invalid JSON: Expecting property name enclosed in double quotes at column 20",
        '["A.", "B.", 3]': "expected a JSON object on each line, found an array",
        '{"sentence1": "A.", "text": "B.", "score": 3}': (
            "missing key 'sentence2'; found keys: 'sentence1', 'text', 'score'"
        ),
        '{"sentence1": "A.", "sentence2": 7, "score": 3}': "key 'sentence2' must be a string, found int",
        '{"sentence1": "A.", "sentence2": "B.", "score": true}': "score True in key 'score' is not a number",
    }
    for number, (bad, fragment) in enumerate(cases.items()):
        path = tmp_path / f"case{number}.jsonl"
        path.write_text(f"{good}\n\n{bad}\n", encoding="utf-8")
        expect_error(path, 3, fragment)
    numeric = tmp_path / "numeric.jsonl"
    numeric.write_text('{"sentence1": "A.", "sentence2": "B.", "score": 2}\n', encoding="utf-8")
    assert read_pair_file(numeric).scores.tolist() == [0.4]


def test_quoted_csv_and_line_numbers(tmp_path: Path) -> None:
    path = tmp_path / "quoted.csv"
    path.write_bytes(
        b'\xef\xbb\xbfsentence1,sentence2,score\r\n"A, with comma","said ""hi""\nover two lines",5\r\n'
        b"\r\nB.,C.,oops\r\n"
    )
    expect_error(path, 5, "score 'oops'")
    dataset = read_pair_file(path, skip_bad_rows=True)
    assert dataset[0] == ScoredPair("A, with comma", 'said "hi"\nover two lines', 1.0, None, 2)


def test_txt_is_unquoted_tab_separated_as_sick_ships_it(tmp_path: Path) -> None:
    """SICK.txt: tabs, a header, no quoting; a sentence that opens with a quote mark stays one field."""
    path = tmp_path / "SICK.txt"
    path.write_text("pair_ID\tsentence_A\tsentence_B\trelatedness_score\tentailment_judgment\n"
                    '1\t"Going places" is a film\tA film\t4.5\tNEUTRAL\n2\tA cat\tA car\t1.0\tNEUTRAL\n',
                    encoding="utf-8")
    options = {"sentence1_column": "sentence_A", "sentence2_column": "sentence_B",
               "score_column": "relatedness_score", "score_range": (1.0, 5.0)}
    dataset = read_pair_file(path, **options)  # type: ignore[arg-type]
    assert dataset.sentences1 == ['"Going places" is a film', "A cat"]
    assert dataset.scores.tolist() == [0.875, 0.0]
    assert [pair.sentence2 for pair in read_text_pairs(path, sentence1_column="sentence_A",
                                                       sentence2_column="sentence_B")] == ["A film", "A car"]
    assert "--sentence1-column sentence_A" in expect_error(path, 1, "header lacks").reason
    commas = tmp_path / "pairs.txt"
    commas.write_text("sentence1,sentence2,score\na,b,1\n", encoding="utf-8")
    expect_error(commas, 1, "read as tab-separated text with a header row (as SICK's), but this line has no tab")


def test_scores_on_a_zero_to_one_scale_read_as_zero_to_five_warn(tmp_path: Path) -> None:
    """0–1 scores pass every 0–5 check but would train as 0–0.2 labels: a warning names the option."""
    rows = [HEADER] + [[f"A{i}.", f"B{i}.", f"{i / 24:.3f}"] for i in range(25)]
    path = write_pairs(tmp_path, "csv", rows)
    with pytest.warns(ScoreScaleWarning, match=r"all 25 scores in .*pairs\.csv lie between 0 and 1, .*"
                                              r"--score-range 0 1 \(score_range=\(0, 1\)\).* read as 0–0\.2"):
        dataset = read_pair_file(path)
    assert dataset.scores.max() == pytest.approx(0.2)  # still read as declared: a warning, not a guess
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert read_pair_file(path, score_range=(0.0, 1.0)).scores.max() == 1.0
        read_pair_file(write_pairs(tmp_path, "csv", rows[:20], name="few"))  # 19 pairs: too few to tell
        read_pair_file(write_pairs(tmp_path, "csv", [*rows[:25], ["C.", "D.", "1.5"]], name="wide"))
        read_pair_file(write_pairs(tmp_path, "csv", [HEADER] + [["A.", "B.", "1"]] * 30, name="flat"))
    assert issubclass(ScoreScaleWarning, UserWarning)


def test_gzip_compressed_pair_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """MTEB's STS sets are test.jsonl.gz: any supported format may be gzipped, and a bad archive says so."""
    rows = [HEADER, GOOD, ["A cat.", "A car.", "0.5"]]
    plain = read_pair_file(write_pairs(tmp_path, "jsonl", rows))
    for fmt in ("jsonl", "tsv", "csv"):
        source = write_pairs(tmp_path, fmt, rows, name=f"packed-{fmt}")
        packed = tmp_path / f"test.{fmt}.gz"
        packed.write_bytes(gzip.compress(source.read_bytes()))
        dataset = read_pair_file(packed)
        assert dataset.sentences1 == plain.sentences1 and dataset.scores.tolist() == plain.scores.tolist()
        assert [pair.line for pair in dataset] == [2, 3] if fmt != "jsonl" else [1, 2]
    unnamed = tmp_path / "unnamed.jsonl"  # gzipped but not named so: the magic bytes decide
    unnamed.write_bytes(gzip.compress(write_pairs(tmp_path, "jsonl", rows).read_bytes()))
    assert read_pair_file(unnamed).sentences2 == plain.sentences2
    fake = tmp_path / "fake.jsonl.gz"
    fake.write_text('{"sentence1": "a", "sentence2": "b", "score": 1}\n', encoding="utf-8")
    expect_error(fake, None, "named .gz but not gzip-compressed")
    cut = tmp_path / "cut.jsonl.gz"
    cut.write_bytes(gzip.compress(write_pairs(tmp_path, "jsonl", rows * 50).read_bytes())[:60])
    expect_error(cut, None, "cannot unpack this gzip file")
    bad_byte = tmp_path / "bad.tsv.gz"
    bad_byte.write_bytes(gzip.compress(b"sentence1\tsentence2\tscore\nA\xff.\tB.\t1\n"))
    expect_error(bad_byte, 2, "in the unpacked file")
    with pytest.raises(ConfigError, match=r"cannot tell the format.*gzip-compressed"):
        read_pair_file(tmp_path / "pairs.gz")
    monkeypatch.setattr(lines_module, "GZIP_MIN_LIMIT", 1000)
    bomb = tmp_path / "bomb.jsonl.gz"
    bomb.write_bytes(gzip.compress(b"{}" + b" " * 100_000))
    expect_error(bomb, None, "a decompression bomb?")


def test_unbalanced_quote_hint(tmp_path: Path) -> None:
    path = tmp_path / "pairs.csv"
    path.write_text('sentence1,sentence2,score\n"Going places,B.,1\nC.,D.,2\n', encoding="utf-8")
    expect_error(path, 2, "(the record runs to line 3: an unbalanced quote?)")
    plain = tmp_path / "pairs.tsv"  # plain TSV: the quote mark is text (STSb has such sentences)
    plain.write_text('sentence1\tsentence2\tscore\n"Going places\tB.\t1\nC.\tD.\t2\n', encoding="utf-8")
    assert read_pair_file(plain).sentences1 == ['"Going places', "C."]


def test_stray_carriage_return(tmp_path: Path) -> None:
    path = tmp_path / "pairs.csv"
    path.write_bytes(b"sentence1,sentence2,score\nA.\rB.,C.,1\nD.,E.,2\n")
    expect_error(path, 2, "a stray carriage return")
    assert read_pair_file(path, skip_bad_rows=True).sentences1 == ["D."]


def test_unsupported_extension_and_bad_range(tmp_path: Path) -> None:
    path = tmp_path / "pairs.xlsx"
    path.write_text("x", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"supported extensions are \.csv, \.tsv, \.tab, \.txt, \.jsonl, \.ndjson"):
        read_pair_file(path)
    with pytest.raises(ConfigError, match="score_range"):
        read_pair_file(write_pairs(tmp_path, "csv", [HEADER, GOOD]), score_range=(5.0, 0.0))


def test_skipped_summary_lists_first_twenty(tmp_path: Path) -> None:
    rows = [HEADER] + [["A.", "B.", "x"]] * 25 + [GOOD]
    dataset = read_pair_file(write_pairs(tmp_path, "csv", rows), skip_bad_rows=True)
    summary = dataset.skipped_summary()
    assert summary.startswith("skipped 25 bad rows in ")
    assert "(lines 2, 3, 4," in summary and ", 21 and 5 more: score 'x'" in summary


#: Pieces that trip readers: separators, quotes, stray carriage returns, NUL, a BOM, JSON and number edge cases.
_HOSTILE = st.sampled_from(["a", " ", "\t", ",", '"', "\n", "\r", "{", "}", ":", "[", "]", "1", "5", ".", "-", "\x00",
                            "é", "\ufeff", "null", "NaN", "1e309", "sentence1", "sentence2", "score", "anchor",
                            "positive", "\\"])
_HEADERS = st.sampled_from(["", "sentence1,sentence2,score\n", "sentence1\tsentence2\tscore\n", "anchor,positive\n",
                            '{"sentence1": "a", "sentence2": "b", "score": 1}\n'])


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(header=_HEADERS, body=st.lists(_HOSTILE, max_size=40).map("".join), raw=st.binary(max_size=24),
       use_raw=st.booleans(), suffix=st.sampled_from([".csv", ".tsv", ".txt", ".jsonl", ".jsonl.gz", ".tsv.gz"]),
       packed=st.booleans(), skip=st.booleans())
@example(header="", body="anchor\r,positive\na,b\n", raw=b"", use_raw=False, suffix=".csv", packed=False,
         skip=False)  # a stray carriage return in the header once escaped as the csv module's own error
def test_hostile_bytes_get_a_sentsim_error_and_never_a_traceback(tmp_path: Path, header: str, body: str, raw: bytes,
                                                                   use_raw: bool, suffix: str, packed: bool,
                                                                   skip: bool) -> None:
    """Whatever a data file holds, every reader returns pairs or raises a SentsimError (the CLI's exit 2)."""
    data = raw if use_raw else (header + body).encode("utf-8")
    path = tmp_path / f"hostile{suffix}"
    path.write_bytes(gzip.compress(data) if packed and suffix.endswith(".gz") else data)
    for reader in (read_pair_file, read_text_pairs, read_anchor_positive_file):
        try:
            result = reader(path, skip_bad_rows=skip)
        except SentsimError as error:
            assert str(error).strip()
            if isinstance(error, DataFormatError):
                assert error.path == str(path)  # names the file the user gave
        else:
            assert len(result) > 0  # a reader that returns has read at least one pair


def test_plain_tsv_keeps_quote_marks_and_pandas_quoted_tsv_is_unquoted(tmp_path: Path) -> None:
    """A sentence opening with a quote mark is text in plain TSV (STSb has 124 of them in train); a TSV
    written with CSV quoting (pandas' to_csv(sep="\\t")) still reads as its writer meant."""
    plain = tmp_path / "plain.tsv"
    plain.write_text('sentence1\tsentence2\tscore\n"Hello," he said.\tHe said hello.\t4.0\n'
                     '"Quoted" words open it\tno quotes here\t1.0\nA third row.\tA 3rd row.\t5\n', encoding="utf-8")
    dataset = read_pair_file(plain)
    assert dataset.sentences1 == ['"Hello," he said.', '"Quoted" words open it', "A third row."]
    assert [pair.line for pair in dataset] == [2, 3, 4]
    quoted = tmp_path / "pandas.tsv"
    quoted.write_text('sentence1\tsentence2\tscore\n"""Hello,"" he said."\tHe said hello.\t4.0\n'
                      '"two\nlines"\tplain\t1.0\n', encoding="utf-8")
    assert read_pair_file(quoted).sentences1 == ['"Hello," he said.', "two\nlines"]


@pytest.mark.skipif(not (Path(__file__).resolve().parents[2] / "shared/data/stsbenchmark/sts-train.csv").is_file(),
                    reason="no STSb copy")
def test_stsb_train_written_as_plain_tsv_reads_every_pair(tmp_path: Path) -> None:
    from sentsim.data import read_stsbenchmark

    train = read_stsbenchmark(Path(__file__).resolve().parents[2] / "shared/data/stsbenchmark", "train")
    path = tmp_path / "train.tsv"
    path.write_text("sentence1\tsentence2\tscore\n" + "".join(
        f"{pair.sentence1}\t{pair.sentence2}\t{pair.score * 5:g}\n" for pair in train), encoding="utf-8")
    dataset = read_pair_file(path)
    assert len(dataset) == len(train) == 5749
    assert dataset.sentences1 == train.sentences1 and dataset.sentences2 == train.sentences2


def test_utf16_files_and_underscored_scores_are_named(tmp_path: Path) -> None:
    text = "sentence1\tsentence2\tscore\nA.\tB.\t3\n"
    for name, data in (("bom.tsv", text.encode("utf-16")), ("plain.tsv", text.encode("utf-16-le"))):
        path = tmp_path / name
        path.write_bytes(data)
        expect_error(path, None, "UTF-16")
    underscored = write_pairs(tmp_path, "tsv", [HEADER, ["A.", "B.", "0_1"]], name="underscored")
    expect_error(underscored, 2, "score '0_1' in column 'score' is not a number")


def test_a_semeval_input_file_without_its_gold_file_says_which_is_missing(tmp_path: Path) -> None:
    from sentsim.data import load_pairs

    path = tmp_path / "STS.input.headlines.txt"
    path.write_text("A man runs.\tA man is running.\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"STS\.gs\.headlines\.txt are not beside it"):
        load_pairs(path)


def test_one_bad_row_does_not_send_a_plain_tsv_back_to_quoting(tmp_path: Path) -> None:
    path = tmp_path / "plain.tsv"
    path.write_text('sentence1\tsentence2\tscore\n"Going places\tB.\t1\nC.\tD.\t2\nonly two\tfields\n'
                    'E.\tF.\t3\t\n', encoding="utf-8")
    dataset = read_pair_file(path, skip_bad_rows=True)
    assert dataset.sentences1 == ['"Going places', "C."]  # nothing swallowed
    assert [row.line for row in dataset.skipped] == [4, 5]
