"""The data stage: the STS Benchmark (reading, format errors, download), PairDataset and load_pairs.

Generic pair files and the hostile-bytes fuzz of every reader are in test_pair_files.py."""

from __future__ import annotations

import io
import tarfile
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from sentsim.data import (
    PairDataset,
    ScoredPair,
    SkippedRow,
    ensure_stsbenchmark,
    genre_name,
    load_pairs,
    read_stsbenchmark,
)
from sentsim.errors import ConfigError, DataFormatError, OfflineError

from .pair_files import write_pairs

REAL_STSB = Path(__file__).resolve().parents[2] / "shared/data/stsbenchmark"
needs_real_stsb = pytest.mark.skipif(not (REAL_STSB / "sts-train.csv").is_file(), reason="no STSb copy")

GOOD_STSB_ROW = "main-news\theadlines\t2013\t0001\t2.5\tA cat sits.\tA cat is sitting."


# --------------------------------------------------------------------------------------------------
# Helpers


def write_stsb(folder: Path, rows: list[str] | bytes, *, split: str = "train") -> Path:
    """An STSb folder holding all three splits, `split` with the given rows, the others one good row."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("train", "dev", "test"):
        (folder / f"sts-{name}.csv").write_text(GOOD_STSB_ROW + "\n", encoding="utf-8")
    target = folder / f"sts-{split}.csv"
    if isinstance(rows, bytes):
        target.write_bytes(rows)
    else:
        target.write_text("".join(row + "\n" for row in rows), encoding="utf-8")
    return folder



# --------------------------------------------------------------------------------------------------
# The real STS Benchmark


@needs_real_stsb
@pytest.mark.parametrize(("split", "count"), [("train", 5749), ("dev", 1500), ("test", 1379)])
def test_real_stsb_split_sizes(split: str, count: int) -> None:
    dataset = read_stsbenchmark(REAL_STSB, split)
    assert len(dataset) == count
    assert dataset.skipped == []
    scores = dataset.scores
    assert scores.dtype == np.float64 and scores.min() >= 0.0 and scores.max() <= 1.0
    assert {genre_name(g) for g in dataset.genres} == {"news", "captions", "forum"}


@needs_real_stsb
def test_real_stsb_known_rows() -> None:
    train = read_stsbenchmark(REAL_STSB, "train")  # CRLF line endings in the release
    first = train[0]
    assert first == ScoredPair("A plane is taking off.", "An air plane is taking off.", 1.0, "main-captions", 1)
    # Line 5553 carries the two extra source columns.
    extra = next(pair for pair in train if pair.line == 5553)
    assert extra.sentence1 == "Driver backs into stroller with child, drives off"
    assert extra.sentence2 == "Driver backs into mom, stroller with child then drives off"
    assert extra.score == pytest.approx(0.8) and extra.genre == "main-news"
    # Quotes are text, not CSV quoting.
    dev = read_stsbenchmark(REAL_STSB, "dev")
    quoted = dev[267]
    assert quoted.line == 268 and quoted.sentence2 == 'a woman is standing by a pillar where "u2" is written.'
    assert quoted.score == pytest.approx(4.2 / 5)


# --------------------------------------------------------------------------------------------------
# STS Benchmark format errors


def test_stsb_extra_columns_and_crlf(tmp_path: Path) -> None:
    rows = (GOOD_STSB_ROW + "\tsource a\tsource b\r\n" + GOOD_STSB_ROW + "\r\n").encode()
    dataset = read_stsbenchmark(write_stsb(tmp_path, rows), "train")
    assert [pair.sentence2 for pair in dataset] == ["A cat is sitting."] * 2
    assert dataset.scores.tolist() == [0.5, 0.5]


@pytest.mark.parametrize(
    ("row", "fragment"),
    [
        ("main-news\theadlines\t2013\t0002\t2.5\tonly one sentence", "9 with the source columns; found 6"),
        ("main-news\theadlines\t2013\t0002\t2.5\t \tB.", "empty sentence in sentence1 (column 6)"),
        (
            "main-news\theadlines\t2013\t0002\tfive\tA.\tB.",
            "score 'five' in score (column 5) is not a number",
        ),
        ("main-news\theadlines\t2013\t0002\t5.5\tA.\tB.", "score 5.5 in score (column 5) is outside"),
    ],
)
def test_stsb_bad_rows(tmp_path: Path, row: str, fragment: str) -> None:
    folder = write_stsb(tmp_path, [GOOD_STSB_ROW, row])
    with pytest.raises(DataFormatError) as caught:
        read_stsbenchmark(folder, "train")
    assert "sts-train.csv, line 2:" in str(caught.value)
    assert fragment in str(caught.value)
    skipped = read_stsbenchmark(folder, "train", skip_bad_rows=True)
    assert len(skipped) == 1 and skipped.skipped[0].line == 2


def test_stsb_undecodable_and_empty(tmp_path: Path) -> None:
    folder = write_stsb(tmp_path / "bad", (GOOD_STSB_ROW + "\n").encode() + b"main-news\tx\t1\t2\t3\tA \xff.\tB.\n")
    with pytest.raises(DataFormatError, match=r"sts-train\.csv, line 2: not valid UTF-8: byte 0xff at byte offset"):
        read_stsbenchmark(folder, "train")
    empty = write_stsb(tmp_path / "empty", b"\n\n")
    with pytest.raises(DataFormatError, match=r"sts-train\.csv: file is empty"):
        read_stsbenchmark(empty, "train")


def test_stsb_unknown_split(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="train, dev, test"):
        read_stsbenchmark(write_stsb(tmp_path, [GOOD_STSB_ROW]), "validation")


def test_genre_name() -> None:
    assert genre_name("main-news") == "news"
    assert genre_name("main-captions") == "captions"
    assert genre_name("main-forum") == genre_name("main-forums") == "forum"
    assert genre_name("other") == "other" and genre_name(None) is None


# --------------------------------------------------------------------------------------------------
# PairDataset


def test_pair_dataset_views() -> None:
    pairs = [ScoredPair(f"a{i}", f"b{i}", i / 4, genre="g", line=i + 1) for i in range(5)]
    dataset = PairDataset(pairs=pairs, source="memory")
    assert len(dataset) == 5 and list(dataset) == pairs and dataset[2] is pairs[2]
    assert dataset.sentences2 == ["b0", "b1", "b2", "b3", "b4"]
    assert dataset.scores.tolist() == [0.0, 0.25, 0.5, 0.75, 1.0]
    small = dataset.subset(2)
    assert isinstance(small, PairDataset) and small.pairs == pairs[:2] and small.source == "memory"
    assert len(dataset.subset(99)) == 5 and dataset.skipped_summary() == "no rows skipped"
    assert PairDataset(pairs=[], source="x").scores.shape == (0,)
    noted = PairDataset(pairs=pairs, source="memory", skipped=[SkippedRow(line=7, reason="bad score")])
    assert noted.skipped_summary() == "skipped 1 bad row in memory (line 7: bad score)"
    assert noted[1:3].skipped == noted.skipped and noted[1:3].pairs == pairs[1:3]
    with pytest.raises(ConfigError):
        dataset.subset(-1)
    with pytest.raises(ValueError, match="normalised"):
        ScoredPair("a", "b", 4.0)


# --------------------------------------------------------------------------------------------------
# load_pairs


def test_load_pairs_dispatch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = write_stsb(tmp_path / "stsbenchmark", [GOOD_STSB_ROW, GOOD_STSB_ROW], split="dev")
    assert len(load_pairs(folder, split="dev")) == 2
    assert len(load_pairs(tmp_path, split="dev")) == 2  # the folder the archive was unpacked into
    pair_file = write_pairs(tmp_path, "tsv", [["s1", "s2", "y"], ["A.", "B.", "0.5"]])
    loaded = load_pairs(
        pair_file, split="ignored", sentence1_column="s1", sentence2_column="s2", score_column="y",
        score_range=(0.0, 1.0),
    )  # fmt: skip
    assert loaded.scores.tolist() == [0.5]
    with pytest.raises(ConfigError, match=r"no such file or folder: .*nowhere"):
        load_pairs(tmp_path / "nowhere")
    (tmp_path / "other").mkdir()
    with pytest.raises(ConfigError, match=r"has no sts-test\.csv: .*sts-train\.csv, sts-dev\.csv, sts-test\.csv"):
        load_pairs(tmp_path / "other", split="test")
    monkeypatch.setenv("SENTSIM_STSB_DIR", str(folder))
    assert len(load_pairs(None, split="dev")) == 2


# --------------------------------------------------------------------------------------------------
# ensure_stsbenchmark


@pytest.fixture
def clean_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in ("SENTSIM_STSB_DIR", "HF_HUB_OFFLINE", "SENTSIM_OFFLINE", "XDG_CACHE_HOME"):
        monkeypatch.delenv(name, raising=False)
    cache = tmp_path / "cache"
    monkeypatch.setenv("SENTSIM_CACHE", str(cache))
    return cache


def test_ensure_resolution_order(tmp_path: Path, clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(urllib.request, "urlopen", pytest.fail)  # never downloads here
    explicit = write_stsb(tmp_path / "explicit", [GOOD_STSB_ROW])
    from_env = write_stsb(tmp_path / "env", [GOOD_STSB_ROW])
    cached = write_stsb(clean_env / "stsbenchmark", [GOOD_STSB_ROW])
    assert ensure_stsbenchmark() == cached
    monkeypatch.setenv("SENTSIM_STSB_DIR", str(from_env))
    assert ensure_stsbenchmark() == from_env
    assert ensure_stsbenchmark(explicit) == explicit
    with pytest.raises(ConfigError, match="not an STS Benchmark folder"):
        ensure_stsbenchmark(tmp_path / "missing")
    monkeypatch.delenv("SENTSIM_STSB_DIR")
    (cached / "sts-dev.csv").unlink()
    with pytest.raises(ConfigError, match="exists but lacks"):
        ensure_stsbenchmark()


def test_ensure_offline_variable(clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(urllib.request, "urlopen", pytest.fail)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(OfflineError, match="HF_HUB_OFFLINE or SENTSIM_OFFLINE is set") as caught:
        ensure_stsbenchmark()
    assert "--data PATH" in str(caught.value) and "SENTSIM_STSB_DIR" in str(caught.value)


def test_ensure_network_error(clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(url: str, timeout: float) -> None:
        raise urllib.error.URLError("Name or service not known")

    monkeypatch.setattr(urllib.request, "urlopen", refuse)
    with pytest.raises(OfflineError) as caught:
        ensure_stsbenchmark()
    message = str(caught.value)
    assert "Name or service not known" in message
    assert "--data PATH" in message and "SENTSIM_STSB_DIR" in message
    assert not (clean_env / "stsbenchmark").exists()
    assert list(clean_env.iterdir()) == []  # the temporary download folder is gone


def _tarball(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, payload in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
    return buffer.getvalue()


def test_ensure_downloads_and_unpacks(clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    row = (GOOD_STSB_ROW + "\n").encode()
    archive = _tarball({f"stsbenchmark/sts-{split}.csv": row for split in ("train", "dev", "test")})
    monkeypatch.setattr(urllib.request, "urlopen", lambda url, timeout: io.BytesIO(archive))
    folder = ensure_stsbenchmark()
    assert folder == clean_env / "stsbenchmark"
    assert len(read_stsbenchmark(folder, "test")) == 1
    assert sorted(p.name for p in clean_env.iterdir()) == ["stsbenchmark"]


def test_ensure_refuses_unsafe_archive(clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    archive = _tarball({"../evil.csv": b"x"})
    monkeypatch.setattr(urllib.request, "urlopen", lambda url, timeout: io.BytesIO(archive))
    with pytest.raises(DataFormatError, match=r"unsafe path in archive: '\.\./evil\.csv'"):
        ensure_stsbenchmark()
    assert not (clean_env.parent / "evil.csv").exists()
    monkeypatch.setattr(urllib.request, "urlopen", lambda url, timeout: io.BytesIO(b"not a tarball"))
    with pytest.raises(DataFormatError, match=r"not a readable tar\.gz"):
        ensure_stsbenchmark()


def test_what_cannot_be_read_says_what_it_is(tmp_path: Path) -> None:
    from sentsim.data.lines import not_a_file

    (tmp_path / "broken").symlink_to(tmp_path / "gone")
    assert "is a folder" in not_a_file(tmp_path)
    assert "broken symbolic link" in not_a_file(tmp_path / "broken")
    (tmp_path / "loop_a").symlink_to(tmp_path / "loop_b")
    (tmp_path / "loop_b").symlink_to(tmp_path / "loop_a")
    assert not_a_file(tmp_path / "loop_a") == f"{tmp_path / 'loop_a'}: loops through symbolic links"
    assert "not a regular file" in not_a_file(Path("/dev/null"))
    assert not_a_file(tmp_path / "missing") == f"no such file: {tmp_path / 'missing'}"
    with pytest.raises(ConfigError, match="not a regular file"):
        load_pairs("/dev/null")


@needs_real_stsb
def test_one_stsb_split_file_given_alone_reads_as_that_split(tmp_path: Path) -> None:
    alone = load_pairs(REAL_STSB / "sts-test.csv")
    assert len(alone) == 1379 and alone.sentences1 == read_stsbenchmark(REAL_STSB, "test").sentences1
    own = tmp_path / "sts-test.csv"  # a user's own CSV of that name is a pair file as before
    own.write_text("sentence1,sentence2,score\nA.,B.,3\nC.,D.,4\n", encoding="utf-8")
    assert load_pairs(own).sentences1 == ["A.", "C."]
