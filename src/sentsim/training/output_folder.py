"""Whether a run may write its folder: fresh or empty, or (with ``overwrite``) an earlier sentsim run only.

``--output runs`` once replaced a folder of earlier runs; ``--output .`` the working directory. A
run folder therefore carries a marker (``.sentsim-run.json``) listing what sentsim put in it, and
an existing folder is replaced only when asked and only when everything in it is sentsim's: a
folder holding anything else (a user's notes, a model, a data set) is refused whatever the flags.
Folders written before the marker existed are recognised by their files (``config.json`` with a
``base_model`` and ``summary.json``, or a ``seeds.json`` parent of ``seed-<n>`` runs).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

from sentsim.errors import ConfigError
from sentsim.persistence.atomic import atomic_write_json
from sentsim.persistence.locks import output_lock
from sentsim.persistence.model_files import is_model_entry
from sentsim.persistence.outputs import refuse_working_folder

__all__ = ["RUN_MARKER", "check_run_output", "claim_run_output", "is_run_folder", "is_sentsim_run",
           "write_run_marker"]

#: The marker sentsim writes into every run folder (and every ``--seeds`` parent) it creates.
RUN_MARKER = ".sentsim-run.json"
#: What a run folder written before the marker holds (plus hidden temporaries and locks).
_LEGACY_RUN_ENTRIES = frozenset({"config.json", "summary.json", "metrics.jsonl", "predictions.jsonl",
                                 "report.html", "report.md", "plots", "model", "checkpoints"})
_SEED_FOLDER = re.compile(r"seed-\d+")
# Hidden names sentsim itself leaves next to what it writes: atomic temporaries, moved-aside
# folders, lock files, owner markers.
_SENTSIM_HIDDEN = re.compile(r"\..+\.(tmp|old)-[0-9a-f]+|\..+\.lock|\.sentsim-[\w-]+\.json")

Kind = Literal["run", "seeds"]


def write_run_marker(folder: str | os.PathLike[str], *, kind: Kind = "run") -> Path:
    """Records that sentsim wrote ``folder`` and which entries and files it holds; call it last, inside it."""
    folder = Path(folder)
    entries = sorted(entry.name for entry in folder.iterdir()
                     if entry.name != RUN_MARKER and not _SENTSIM_HIDDEN.fullmatch(entry.name))
    return atomic_write_json(folder / RUN_MARKER, {"kind": kind, "created": time.time(), "entries": entries,
                                                   "files": sorted(_files(folder))})


def _files(folder: Path) -> set[str]:
    """Every file under ``folder`` (relative, '/'-separated), sentsim's hidden temporaries and markers left out;
    the files of a nested run folder (a ``--seeds`` parent's ``seed-<n>``) are that folder's own business."""
    found: set[str] = set()
    for root, folders, names in os.walk(folder):
        folders[:] = [name for name in folders if not _SENTSIM_HIDDEN.fullmatch(name)]
        for name in names:
            if not _SENTSIM_HIDDEN.fullmatch(name) and name != RUN_MARKER:
                found.add((Path(root) / name).relative_to(folder).as_posix())
    return found


def _run_owned(name: str) -> bool:
    """Whether a file inside a run folder (relative path) is one sentsim writes there: a model file under
    ``model/`` (also those ``calibrate`` or ``export`` add later), a plot, a checkpoint."""
    parts = name.split("/")
    if len(parts) == 1:
        return True  # top-level entries are checked against the marker's list
    if parts[0] == "model":
        return is_model_entry(parts[1]) or parts[1] == "README.md"
    if parts[0] == "plots":
        return parts[-1].endswith((".png", ".svg"))
    return parts[0] == "checkpoints"


def _json_object(path: Path) -> dict[str, Any] | None:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    return value if isinstance(value, dict) else None


def _foreign_entries(folder: Path) -> list[str] | None:
    """The entries of ``folder`` sentsim did not write; None when it is no sentsim folder at all."""
    names = {entry.name for entry in folder.iterdir()}
    visible = {name for name in names if not _SENTSIM_HIDDEN.fullmatch(name)}
    marker = _json_object(folder / RUN_MARKER)
    if marker is not None and isinstance(marker.get("entries"), list):
        # A file anywhere inside (a user's notes in model/, a data set copied into it) makes it foreign too.
        top = sorted(visible - set(map(str, marker["entries"])))
        if top:
            return top
        if marker.get("kind") == "seeds":  # each seed-<n> run answers for its own files
            return [f"{name}/{inner}" for name in sorted(visible) if (folder / name).is_dir()
                    for inner in (_foreign_entries(folder / name) or [])[:1]]
        recorded = set(map(str, marker["files"])) if isinstance(marker.get("files"), list) else set()
        return sorted(name for name in _files(folder) if name not in recorded and not _run_owned(name))
    if _is_unmarked_run(folder):
        top = sorted(visible - _LEGACY_RUN_ENTRIES)
        return top or sorted(name for name in _files(folder) if not _run_owned(name))
    if _json_object(folder / "seeds.json") is not None or any(_SEED_FOLDER.fullmatch(name) for name in visible):
        seeds = {name for name in visible if _SEED_FOLDER.fullmatch(name) and is_run_folder(folder / name)}
        if seeds:
            return sorted(visible - seeds - {"seeds.json"})
    return None


def is_sentsim_run(folder: str | os.PathLike[str]) -> bool:
    """True for a run folder ``sentsim train`` wrote (its marker, or an older run's config and summary),
    whatever else has been put in it since."""
    folder = Path(folder)
    marker = _json_object(folder / RUN_MARKER)
    if marker is not None:
        return marker.get("kind") == "run"
    return _is_unmarked_run(folder)


def _is_unmarked_run(folder: Path) -> bool:
    """A run written before the marker existed: its ``config.json`` names a ``base_model`` beside a summary."""
    config = _json_object(folder / "config.json")
    return config is not None and "base_model" in config and _json_object(folder / "summary.json") is not None


def is_run_folder(folder: str | os.PathLike[str]) -> bool:
    """True for a folder sentsim wrote (a run or a ``--seeds`` parent) holding nothing else."""
    folder = Path(folder)
    return folder.is_dir() and not folder.is_symlink() and _foreign_entries(folder) == []


def check_run_output(target: str | os.PathLike[str], *, overwrite: bool, flag: str = "--output",
                     overwrite_flag: str = "--overwrite") -> Path:
    """Returns ``target`` if a run may write its folder there, else raises ConfigError (one line).

    Allowed: a missing path (its parent folders are made later) or an empty folder; with
    ``overwrite`` also a folder sentsim wrote that holds nothing else. Refused always: a file, the
    current folder or one above it, the file-system root and the home folder, a path under a file.
    """
    target = Path(target).expanduser()
    refuse_working_folder(target, flag, example="runs/stsb")
    for parent in target.parents:
        if parent.exists() and not parent.is_dir():
            raise ConfigError(f"{flag} {target}: {parent} is a file, not a folder")
    if target.is_symlink() or (target.exists() and not target.is_dir()):
        raise ConfigError(f"{flag} {target}: exists and is not a folder; sentsim never replaces it")
    if not target.exists() or not any(target.iterdir()):
        return target
    foreign = _foreign_entries(target)
    if foreign is None or foreign:
        names = foreign or sorted(entry.name for entry in target.iterdir())
        shown = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
        what = "is a non-empty folder" if foreign is None else "holds files"
        raise ConfigError(f"{flag} {target}: {what} sentsim did not write ({shown}); it is never replaced, "
                          "choose a new folder")
    if not overwrite:
        raise ConfigError(f"{flag} {target}: already holds a sentsim run; pass {overwrite_flag} to replace it "
                          "or choose a new folder")
    return target


@contextlib.contextmanager
def claim_run_output(target: str | os.PathLike[str], *, overwrite: bool, flag: str = "--output") -> Iterator[Path]:
    """Checks ``target`` (see :func:`check_run_output`) and holds its lock for the body.

    Checked before the lock (a refused folder fails without creating anything) and again under it,
    since the run that held the lock may have just written the folder.

    Raises:
        ConfigError: the folder is refused, or another live run holds its lock (its PID named).
    """
    target = check_run_output(target, overwrite=overwrite, flag=flag)
    target.parent.mkdir(parents=True, exist_ok=True)
    with output_lock(target):
        yield check_run_output(target, overwrite=overwrite, flag=flag)
