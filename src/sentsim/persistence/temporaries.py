"""Owner markers in atomic-write temporary folders, and finding and removing those of dead processes.

``atomic_directory`` builds each folder as ``.NAME.tmp-XXXX`` next to its destination. A process
killed with SIGKILL (or by the OOM killer, or a power cut) cannot delete it, and a half-built model
or run folder can be gigabytes. So each temporary folder carries a small marker naming its owner
(host, PID and the PID's start time, which tells a reused PID apart); a later run can then tell a
leftover of a dead process from a folder another live run is still building, and only the former
is ever offered for removal.
"""

from __future__ import annotations

import json
import logging
import os
import shlex
import shutil
import socket
import time
from pathlib import Path
from typing import Any

__all__ = ["MARKER_NAME", "find_stale_temporaries", "remove_stale_temporaries", "write_owner_marker"]

logger = logging.getLogger(__name__)

#: The owner marker inside a temporary folder; removed before the folder is renamed into place.
MARKER_NAME = ".sentsim-owner.json"
#: What every atomic-write temporary name contains: ``.{final name}{TEMPORARY_INFIX}{hex}``.
TEMPORARY_INFIX = ".tmp-"


def _process_start(pid: int) -> str | None:
    """The start time of ``pid`` in clock ticks since boot (Linux ``/proc``), or None where unknown."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses; the fields after it do not.
    fields = stat.rsplit(")", 1)[-1].split()
    return fields[19] if len(fields) > 19 else None


def write_owner_marker(folder: Path) -> None:
    """Records this process as the owner of the temporary ``folder``."""
    record = {"pid": os.getpid(), "started": _process_start(os.getpid()), "host": socket.gethostname(),
              "created": time.time()}
    (folder / MARKER_NAME).write_text(json.dumps(record) + "\n", encoding="utf-8")


def _read_marker(folder: Path) -> dict[str, Any] | None:
    try:
        record = json.loads((folder / MARKER_NAME).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    return record if isinstance(record, dict) else None


def _owner_is_dead(record: dict[str, Any]) -> bool:
    """True only when the owner is known to be gone; anything uncertain counts as alive."""
    pid = record.get("pid")
    if isinstance(pid, bool) or not isinstance(pid, int) or pid <= 0:
        return False
    if record.get("host") != socket.gethostname() or os.name == "nt":
        return False  # another machine's process (a shared disk), or no safe liveness probe
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return True
    except PermissionError:
        pass  # it exists, owned by another user
    started = record.get("started")
    current = _process_start(pid)
    return started is not None and current is not None and current != started  # the PID was reused


def find_stale_temporaries(parent: str | os.PathLike[str]) -> list[Path]:
    """Temporary folders in ``parent`` whose marker names a process that no longer runs, sorted.

    Folders without a marker (written by older versions, or not ours) are never listed.
    """
    folder = Path(parent)
    try:
        candidates = [path for path in folder.iterdir()
                      if path.name.startswith(".") and TEMPORARY_INFIX in path.name]
    except OSError:
        return []
    stale = []
    for path in sorted(candidates):
        if path.is_symlink() or not path.is_dir():
            continue
        record = _read_marker(path)
        if record is not None and _owner_is_dead(record):
            stale.append(path)
    return stale


def remove_stale_temporaries(parent: str | os.PathLike[str]) -> list[Path]:
    """Deletes the folders :func:`find_stale_temporaries` lists (checked again just before) and
    returns them; folders of live processes and folders without a marker are left alone."""
    removed = []
    for path in find_stale_temporaries(parent):
        record = _read_marker(path)
        if record is None or not _owner_is_dead(record):
            continue
        shutil.rmtree(path)
        removed.append(path)
    return removed


def warn_about_stale_temporaries(parent: Path) -> list[Path]:
    """Logs a warning naming leftovers of dead processes in ``parent`` and the command that removes them."""
    stale = find_stale_temporaries(parent)
    if stale:
        names = ", ".join(path.name for path in stale[:3]) + (f" and {len(stale) - 3} more" if len(stale) > 3 else "")
        logger.warning(
            "%s holds %d temporary folder(s) left by interrupted sentsim processes that no longer run (%s); "
            "remove them with `sentsim clean %s`", parent, len(stale), names, shlex.quote(str(parent)))
    return stale
