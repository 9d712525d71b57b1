"""The STS Benchmark release: finding or downloading a local copy, and reading its three split files.

The files (`sts-train.csv`, `sts-dev.csv`, `sts-test.csv`) are tab-separated and NOT quoted, although
their sentences contain quote characters, so they are split on tabs and never given to a CSV parser
(which would swallow text between quotes). Columns: genre, file, year, id, score (0–5), sentence1,
sentence2; some rows carry two extra source columns, which are ignored.
"""

from __future__ import annotations

import gzip
import http.client
import logging
import os
import shutil
import tarfile
import tempfile
import urllib.error
import urllib.request
import zlib
from pathlib import Path, PurePosixPath

from sentsim.data.lines import read_lines
from sentsim.data.pairs import BadRow, PairCollector, PairDataset
from sentsim.environment import is_offline
from sentsim.errors import ConfigError, DataFormatError, OfflineError

logger = logging.getLogger(__name__)

# The official release archive from the STS wiki; it unpacks to `stsbenchmark/`.
STSB_URL = "https://ixa2.si.ehu.eus/stswiki/images/4/48/Stsbenchmark.tar.gz"
SPLITS = ("train", "dev", "test")
SCORE_RANGE = (0.0, 5.0)

_COLUMNS = ("genre", "file", "year", "id", "score", "sentence1", "sentence2")
_MAX_COLUMNS = len(_COLUMNS) + 2  # the two optional source columns
_FIELD_LABELS = ("sentence1 (column 6)", "sentence2 (column 7)", "score (column 5)")
_DOWNLOAD_TIMEOUT_S = 60.0
_CHUNK = 1 << 20


def split_file(split: str) -> str:
    """The file name of a split; a typo in the split name is a config error, not a missing file."""
    if split not in SPLITS:
        raise ConfigError(f"unknown STS Benchmark split {split!r}; choose one of {', '.join(SPLITS)}")
    return f"sts-{split}.csv"


def genre_name(genre: str | None) -> str | None:
    """Short genre name for reports: 'main-news' → 'news', 'main-captions' → 'captions', 'main-forum' →
    'forum'.

    The release is inconsistent (train says 'main-forum', dev and test 'main-forums'); both map to
    'forum' so per-genre results line up across splits. Unknown genres only lose the 'main-' prefix.
    """
    if genre is None:
        return None
    short = genre.removeprefix("main-")
    return "forum" if short == "forums" else short


def read_stsbenchmark(folder: str | Path, split: str, *, skip_bad_rows: bool = False) -> PairDataset:
    """Read one split of the STS Benchmark from `folder` (the unpacked `stsbenchmark/` folder).

    Scores are divided by 5. Genres are kept as written ('main-news' …); see `genre_name`.
    With `skip_bad_rows` a malformed row is recorded in `PairDataset.skipped` instead of raising.
    """
    path = Path(folder).expanduser() / split_file(split)
    collector = PairCollector(path, score_range=SCORE_RANGE, skip_bad_rows=skip_bad_rows)
    lines = read_lines(path)
    if not any(line.text.strip() for line in lines):
        raise DataFormatError(path, None, "file is empty")
    for line in lines:
        text = line.text.rstrip("\r\n")
        if not text.strip():
            continue
        with collector.row(line.number):
            if line.decode_error:
                raise BadRow(line.decode_error)
            fields = text.split("\t")
            if not len(_COLUMNS) <= len(fields) <= _MAX_COLUMNS:
                raise BadRow(
                    f"expected {len(_COLUMNS)} tab-separated columns ({', '.join(_COLUMNS)}), or "
                    f"{_MAX_COLUMNS} with the source columns; found {len(fields)}"
                )
            collector.add(
                line=line.number,
                sentence1=fields[5],
                sentence2=fields[6],
                score=fields[4],
                genre=fields[0].strip(),
                columns=_FIELD_LABELS,
            )
    return collector.finish()


# ---------------------------------------------------------------------------------------------------
# Finding a local copy, or downloading one.


def _has_splits(folder: Path) -> bool:
    return all((folder / split_file(split)).is_file() for split in SPLITS)


def cache_dir() -> Path:
    """Where sentsim keeps downloads: $SENTSIM_CACHE, else $XDG_CACHE_HOME/sentsim, else ~/.cache/sentsim."""
    if explicit := os.environ.get("SENTSIM_CACHE"):
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "sentsim"


def _offline_error(why: str) -> OfflineError:
    return OfflineError(
        f"the STS Benchmark is not available locally and cannot be downloaded ({why}); "
        "pass --data PATH or set SENTSIM_STSB_DIR=PATH to a folder holding "
        "sts-train.csv, sts-dev.csv and sts-test.csv "
        f"(unpacked from {STSB_URL})"
    )


def ensure_stsbenchmark(
    local: str | Path | None = None, *, url: str = STSB_URL, timeout: float = _DOWNLOAD_TIMEOUT_S
) -> Path:
    """Return a folder holding the three STS Benchmark split files, downloading it once if needed.

    Order: `local` → $SENTSIM_STSB_DIR → `<cache>/stsbenchmark` → download into the cache. A folder
    named explicitly (argument or variable) must be valid: silently downloading instead would hide a
    typo. The download is unpacked next to the cache and renamed into place, so an interrupted run
    never leaves a half-filled cache folder that a later run would trust.
    """
    for origin, candidate in (("argument", local), ("SENTSIM_STSB_DIR", os.environ.get("SENTSIM_STSB_DIR"))):
        if candidate:
            folder = Path(candidate).expanduser()
            if not _has_splits(folder):
                raise ConfigError(
                    f"{folder} (from {origin}) is not an STS Benchmark folder: "
                    "expected sts-train.csv, sts-dev.csv and sts-test.csv in it"
                )
            return folder

    cache = cache_dir()
    target = cache / "stsbenchmark"
    if _has_splits(target):
        return target
    if target.exists() and any(target.iterdir()):
        # Not ours to delete: it may be a copy the user is still filling in.
        raise ConfigError(
            f"{target} exists but lacks sts-train.csv, sts-dev.csv or sts-test.csv; "
            "complete it or delete it to download the STS Benchmark again"
        )
    # One HF_HUB_OFFLINE=1 (or SENTSIM_OFFLINE=1) covers models and data alike.
    if is_offline():
        raise _offline_error("HF_HUB_OFFLINE or SENTSIM_OFFLINE is set")

    try:
        cache.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix=".stsbenchmark-", dir=cache))
    except OSError as exc:
        raise ConfigError(f"cannot create the cache folder {cache}: {exc}; set SENTSIM_CACHE") from None
    try:
        archive = work / "Stsbenchmark.tar.gz"
        _download(url, archive, timeout=timeout)
        unpacked = work / "unpacked"
        _extract_safely(archive, unpacked, origin=url)
        found = next((p.parent for p in sorted(unpacked.rglob("sts-train.csv")) if _has_splits(p.parent)), None)
        if found is None:
            raise DataFormatError(url, None, "the archive holds no folder with sts-train/dev/test.csv")
        try:
            found.rename(target)
        except OSError:
            # Another process finished first; its copy is as good as ours.
            if not _has_splits(target):
                raise
        return target
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _download(url: str, destination: Path, *, timeout: float) -> None:
    """Stream `url` into `destination`; only network failures become `OfflineError`, disk errors stay."""
    logger.info("downloading the STS Benchmark from %s", url)
    try:
        response = urllib.request.urlopen(url, timeout=timeout)
    except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
        raise _offline_error(f"download from {url} failed: {exc}") from exc
    with response, destination.open("wb") as out:
        while True:
            try:
                chunk = response.read(_CHUNK)
            except (OSError, http.client.HTTPException) as exc:
                raise _offline_error(f"download from {url} was interrupted: {exc}") from exc
            if not chunk:
                break
            out.write(chunk)


def _extract_safely(archive: Path, destination: Path, *, origin: str) -> None:
    """Unpack only plain files and folders whose paths stay inside `destination`.

    A downloaded archive is untrusted input: absolute paths, '..' parts, links and device files are
    refused rather than trusting tarfile's defaults (which vary across Python versions).
    """
    destination.mkdir(parents=True)
    try:
        with tarfile.open(archive, mode="r:*") as tar:
            for member in tar:
                parts = PurePosixPath(member.name).parts
                if not parts:  # the archive's own root, "./"
                    continue
                if member.name.startswith(("/", "\\")) or ".." in parts:
                    raise DataFormatError(origin, None, f"unsafe path in archive: {member.name!r}")
                target = destination.joinpath(*parts)
                if member.isdir():
                    target.mkdir(parents=True, exist_ok=True)
                elif member.isfile():
                    source = tar.extractfile(member)
                    if source is None:  # pragma: no cover - isfile() members always have data
                        continue
                    target.parent.mkdir(parents=True, exist_ok=True)
                    with source, target.open("wb") as out:
                        shutil.copyfileobj(source, out)
                else:
                    logger.debug("not extracting %s (not a plain file)", member.name)
    except (tarfile.TarError, EOFError, gzip.BadGzipFile, zlib.error) as exc:
        raise DataFormatError(origin, None, f"the downloaded archive is not a readable tar.gz: {exc}") from None
