"""STS sets as the Hugging Face Hub holds them: a dataset id (``mteb/sickr-sts``) or its downloaded folder.

Today's STS sets (MTEB's ``mteb/stsbenchmark-sts``, ``mteb/sickr-sts``, ``mteb/sts12-sts`` …,
``sentence-transformers/stsb``) live on the Hub as one file per split: ``test.jsonl.gz``,
``data/train-00000-of-00001.parquet``, ``validation/0000.parquet``. ``--data`` takes such a folder as it is
(a ``snapshot_download`` or a ``git clone``), or the dataset id, which is downloaded with huggingface_hub
into its cache (or found there offline). ``--split`` picks the split as for the STS Benchmark; ``dev``
is the Hub's ``validation``. Each file is read as a pair file, so the column and score-range options
apply and errors name the file and line.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from sentsim.data.pair_files import SUPPORTED_EXTENSIONS, format_suffix, read_pair_file
from sentsim.data.pairs import PairDataset
from sentsim.data.parquet_files import PARQUET
from sentsim.environment import is_offline
from sentsim.errors import ConfigError, OfflineError

#: The Hub's names for each of sentsim's splits.
SPLIT_NAMES = {"train": ("train",), "dev": ("validation", "dev", "valid", "val"), "test": ("test",)}
#: ``hf://datasets/owner/name`` (the Hub's own URL form) or a bare ``owner/name``.
_HUB_URL = "hf://datasets/"
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*$")
#: A shard's name: ``train-00000-of-00003`` or ``0000`` (inside a folder named after the split).
_SHARD = re.compile(r"^(?P<split>[A-Za-z_]+?)(?:-\d{5}-of-\d{5})?$")


def _split_files(split: str, by_split: dict[str, list[Path]]) -> list[Path]:
    """The files of ``split`` under any of the Hub's names for it (``dev``: ``validation`` …), in name order."""
    return sorted(path for name in SPLIT_NAMES[split] for path in by_split.get(name, []))


def read_hub_split(folder: Path, split: str, **options: Any) -> PairDataset:
    """The pairs of ``split`` in a Hub dataset folder: its one file, or its shards one after another
    (``options``: ``read_pair_file``'s column, range and skip options).

    A split spread over several folders is several configurations of the dataset (a language each, say),
    which would be mixed: refused, naming the folders to choose from.
    """
    by_split = _files_by_split(folder)
    files = _split_files(split, by_split)
    if not files:
        found = sorted(by_split)
        raise ConfigError(f"{folder} has no {split} split" + (f" ({' or '.join(SPLIT_NAMES[split])})" if split == "dev"
                                                               else "")
                          + f"; its splits: {', '.join(found) or 'none'}"
                          + ("; pass --split with one of them, or --dev-data / --test-data for the missing ones"
                             if found else ""))
    parents = sorted({path.parent for path in files})
    if len(parents) > 1:
        raise ConfigError(f"{folder} holds the {split} split of several configurations ("
                          f"{', '.join(str(parent.relative_to(folder)) for parent in parents)}); pass --data with the "
                          f"folder of one, e.g. --data {parents[0]}")
    parts = [read_pair_file(path, **options) for path in files]
    if len(parts) == 1:
        return parts[0]
    return PairDataset(pairs=[pair for part in parts for pair in part.pairs],
                       source=f"{parents[0]} ({split}: {len(parts)} files)",
                       skipped=[row for part in parts for row in part.skipped])


def is_hub_dataset_folder(folder: Path) -> bool:
    """Whether ``folder`` holds at least one split file of a Hub dataset."""
    known = {name for names in SPLIT_NAMES.values() for name in names}
    return not known.isdisjoint(_files_by_split(folder))


def hub_dataset_id(data: str) -> str | None:
    """The dataset id ``data`` names (``hf://datasets/owner/name`` or ``owner/name``), else None."""
    name = data.removeprefix(_HUB_URL)
    if not _HUB_ID.match(name) or (not data.startswith(_HUB_URL) and (
            Path(data).exists() or format_suffix(Path(name)) in (*SUPPORTED_EXTENSIONS, ".gz"))):
        return None  # a missing file (``data/pairs.tsv``) is a typo, not a dataset to download
    return name


def download_dataset(repo_id: str, *, revision: str | None = None) -> Path:
    """The local snapshot of the Hub dataset ``repo_id``: from huggingface_hub's cache, downloaded if needed
    (only its pair files and card). Offline, only the cache is looked in."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError, RepositoryNotFoundError

    patterns = ["README.md", *(f"*{extension}{gz}" for extension in SUPPORTED_EXTENSIONS for gz in ("", ".gz")
                               if not (gz and extension == PARQUET))]  # no other archive: it may be huge
    offline = is_offline()
    try:
        return Path(snapshot_download(repo_id, repo_type="dataset", revision=revision, allow_patterns=patterns,
                                      local_files_only=offline))
    except RepositoryNotFoundError:
        raise ConfigError(f"no such file or folder: {repo_id}, nor a dataset {repo_id!r} on the Hugging Face "
                          "hub (a private one needs `huggingface-cli login` or HF_TOKEN)") from None
    except (LocalEntryNotFoundError, HfHubHTTPError, OSError) as error:
        why = ("HF_HUB_OFFLINE (or TRANSFORMERS_OFFLINE / SENTSIM_OFFLINE) is set and it is not in the cache"
               if offline else f"the hub cannot be reached ({type(error).__name__})")
        raise OfflineError(f"no such file or folder: {repo_id}; as a Hugging Face dataset it cannot be had: {why}. "
                           "Pass --data PATH to a local copy (its folder, or one of its files), or connect to "
                           "download it") from None


def _files_by_split(folder: Path) -> dict[str, list[Path]]:
    """The pair files under ``folder`` (hidden folders such as ``.cache`` left out) by the split each holds,
    in name order; files that name no split are left out. A file holds a split when its name without
    extensions is the split's (``test.jsonl.gz``), a shard of it (``train-00000-of-00001.parquet``), or it
    is a numbered shard in a folder named after it (``test/0000.parquet``)."""
    by_split: dict[str, list[Path]] = {}
    for path in sorted(folder.rglob("*")):
        if path.is_file() and not any(part.startswith(".") for part in path.relative_to(folder).parts) \
                and format_suffix(path) in SUPPORTED_EXTENSIONS and (split := _split_of(path, folder)) is not None:
            by_split.setdefault(split, []).append(path)
    return by_split


def _split_of(path: Path, folder: Path) -> str | None:
    """The split ``path`` holds: its own name (without extensions and shard numbers) or, for numbered
    shards (``0000.parquet``), its folder's name; None when neither names a split."""
    stem = path.name.split(".")[0]
    match = _SHARD.match(stem)
    if match is not None:
        return match["split"].lower()
    parent = path.parent
    return parent.name.lower() if parent != folder and stem.isdigit() else None
