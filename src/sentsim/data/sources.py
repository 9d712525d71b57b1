"""Turning the user's `--data` value (nothing, a folder or a file) into one `PairDataset`.

The CLI and the server call only `load_pairs`, so "where do pairs come from" is decided in one place.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sentsim.data.hub_datasets import download_dataset, hub_dataset_id, is_hub_dataset_folder, read_hub_split
from sentsim.data.lines import not_a_file
from sentsim.data.pair_files import read_pair_file
from sentsim.data.pairs import PairDataset
from sentsim.data.semeval import gold_file, is_semeval_source, read_semeval_sts, semeval_gold_name, semeval_sets
from sentsim.data.stsbenchmark import SPLITS, ensure_stsbenchmark, read_stsbenchmark, split_file
from sentsim.errors import ConfigError


def load_pairs(
    data: str | Path | None,
    *,
    split: str = "train",
    skip_bad_rows: bool = False,
    sentence1_column: str = "sentence1",
    sentence2_column: str = "sentence2",
    score_column: str = "score",
    genre_column: str | None = None,
    score_range: tuple[float, float] = (0.0, 5.0),
) -> PairDataset:
    """Load scored pairs from wherever `data` points.

    - `None`: the STS Benchmark, found or downloaded by `ensure_stsbenchmark`, split `split`.
    - a folder: an unpacked STS Benchmark (or the folder it was unpacked into), split `split`; a
      SemEval STS 2012–2016 folder (`sentsim.data.semeval`), all its sets, `split` ignored; or a Hugging
      Face dataset folder (`sentsim.data.hub_datasets`), split `split`.
    - a file: a CSV/TSV/JSONL/Parquet pair file, or one SemEval input file with its gold file beside it;
      `split` is ignored because a file is one split already, and the column and range options apply to
      pair files and Hub datasets (the STS Benchmark's and SemEval's layouts are fixed).
    - a Hugging Face dataset id (`mteb/sickr-sts`, `hf://datasets/mteb/sickr-sts`) that is no local path:
      downloaded into huggingface_hub's cache (or found there offline), split `split`.
    """
    if data is None:
        return read_stsbenchmark(ensure_stsbenchmark(), split, skip_bad_rows=skip_bad_rows)
    file_options: dict[str, Any] = {
        "sentence1_column": sentence1_column, "sentence2_column": sentence2_column, "score_column": score_column,
        "genre_column": genre_column, "score_range": score_range, "skip_bad_rows": skip_bad_rows}
    path = Path(data).expanduser()
    if path.is_dir():
        file_name = split_file(split)  # validates the split name first
        release = _stsb_folder(path, split)
        if release is not None:
            return read_stsbenchmark(release, split, skip_bad_rows=skip_bad_rows)
        if semeval_sets(path):
            return read_semeval_sts(path, skip_bad_rows=skip_bad_rows)
        if is_hub_dataset_folder(path):
            return read_hub_split(path, split, **file_options)
        present = sorted(p.name for p in path.glob("sts-*.csv"))
        raise ConfigError(
            f"folder {path} has no {file_name}: a data folder must be the unpacked STS Benchmark with "
            f"{', '.join(split_file(s) for s in SPLITS)}"
            + (f" (found {', '.join(present)})" if present else "")
            + " (or a SemEval STS folder of STS.input.NAME.txt with STS.gs.NAME.txt, or a Hugging Face dataset "
            "folder with train/validation/test files); to use your own pairs pass a .csv, .tsv, .txt, .jsonl or "
            ".parquet file instead"
        )
    if path.is_file():
        if gold_file(path) is not None:
            return read_semeval_sts(path, skip_bad_rows=skip_bad_rows)
        expected_gold = semeval_gold_name(path)
        if expected_gold is not None:
            raise ConfigError(f"{path} is a SemEval STS input file, but its gold scores {expected_gold} are not "
                              "beside it; put the gold file next to it (or pass a pair file with scores)")
        stsb_split = _stsb_split_file(path)
        if stsb_split is not None:  # one split file of the release, given on its own
            return read_stsbenchmark(path.parent, stsb_split, skip_bad_rows=skip_bad_rows)
        return read_pair_file(path, **file_options)
    if path.exists() or path.is_symlink():
        raise ConfigError(not_a_file(path))
    repo_id = hub_dataset_id(str(data))
    if repo_id is not None:
        return read_hub_split(download_dataset(repo_id), split, **file_options)
    raise ConfigError(f"no such file or folder: {path}")


def is_single_set(data: str | Path | None) -> bool:
    """Whether ``--data`` names one set of pairs (a pair file, a SemEval folder or file) rather than an STSb
    release with train/dev/test splits: then ``--split`` means nothing, and training needs ``--dev-data``."""
    if data is None:
        return False
    path = Path(data).expanduser()
    if path.is_file():
        return True
    return path.is_dir() and not any(_stsb_folder(path, name) for name in SPLITS) and is_semeval_source(path)


def _stsb_folder(path: Path, split: str) -> Path | None:
    """The folder holding STSb's ``split`` file: ``path`` itself or the ``stsbenchmark/`` it was unpacked into."""
    return next((folder for folder in (path, path / "stsbenchmark") if (folder / split_file(split)).is_file()), None)


def _stsb_split_file(path: Path) -> str | None:
    """The split of an STS Benchmark file given by itself (``sts-test.csv``: its name, and a first row in the
    release's tab-separated layout with the score in the fifth column); None for any other file."""
    split = next((name for name in SPLITS if path.name == split_file(name)), None)
    if split is None:
        return None
    try:
        with path.open("rb") as handle:
            first = handle.readline(65536).decode("utf-8", errors="replace")
    except OSError:
        return None
    fields = first.rstrip("\r\n").split("\t")
    try:
        float(fields[4])
    except (IndexError, ValueError):
        return None
    return split if 7 <= len(fields) <= 9 else None

