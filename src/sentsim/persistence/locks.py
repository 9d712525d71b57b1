"""One writer per output: a lock file next to the target, held for as long as a run writes there.

Two ``sentsim train --output DIR`` started at once would both train for an hour and then replace
each other's folder; the lock makes the second fail at once, naming the first. The lock is an
``fcntl.flock`` on ``.{DIR name}.lock`` (next to DIR, so it survives DIR being replaced), and the
file holds the owner's PID and host for the message. The kernel releases a flock when its process
dies, however it dies (SIGKILL included), so a lock file left behind by a dead run is simply taken
over, with a warning naming the dead PID.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sentsim.errors import ConfigError

__all__ = ["lock_path", "output_lock"]

logger = logging.getLogger(__name__)

try:
    import fcntl
except ImportError:  # Windows: no flock; the O_EXCL file alone then says who writes
    fcntl = None  # type: ignore[assignment]


def lock_path(target: str | os.PathLike[str]) -> Path:
    """The lock file of ``target``: ``.{name}.lock`` in the same folder."""
    target = Path(target)
    return target.with_name(f".{target.name}.lock")


def _read_owner(fd: int) -> dict[str, Any]:
    os.lseek(fd, 0, os.SEEK_SET)
    try:
        record = json.loads(os.read(fd, 4096).decode("utf-8") or "{}")
    except (UnicodeDecodeError, json.JSONDecodeError):
        return {}
    return record if isinstance(record, dict) else {}


def _describe(owner: dict[str, Any]) -> str:
    pid = owner.get("pid", "unknown")
    host = owner.get("host")
    return f"pid {pid}" + (f" on {host}" if host and host != socket.gethostname() else "")


def _acquire(path: Path, target: Path) -> int:
    """Opens ``path`` and takes its flock; raises ConfigError naming the holder when another has it."""
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            owner = _read_owner(fd)
            os.close(fd)
            raise ConfigError(f"{target}: another sentsim run ({_describe(owner)}) is writing there (lock "
                              f"{path}); wait for it to finish or choose another output") from None
        # A holder that just finished unlinks the file; a lock on that old inode guards nothing.
        try:
            same = os.stat(path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if same:
            return fd
        os.close(fd)


def _acquire_exclusive(path: Path, target: Path) -> int:
    """The flock-less fallback: O_EXCL creation; a leftover must then be removed by hand."""
    try:
        return os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o666)
    except FileExistsError:
        raise ConfigError(f"{target}: another sentsim run is writing there (lock {path}); if none is "
                          "running, delete the lock file") from None


@contextlib.contextmanager
def output_lock(target: str | os.PathLike[str]) -> Iterator[Path]:
    """Holds the lock of ``target`` (whose parent folder must exist) for the body; yields the lock file.

    Raises:
        ConfigError: another live process holds the lock; the message names its PID.
    """
    target = Path(target)
    path = lock_path(target)
    fd = _acquire(path, target) if fcntl is not None else _acquire_exclusive(path, target)
    try:
        previous = _read_owner(fd)
        if previous.get("pid") not in (None, os.getpid()):
            logger.warning("%s: took over the lock left by %s, which no longer runs", path, _describe(previous))
        record = json.dumps({"pid": os.getpid(), "host": socket.gethostname()}) + "\n"
        os.ftruncate(fd, 0)
        os.lseek(fd, 0, os.SEEK_SET)
        os.write(fd, record.encode("utf-8"))
        yield path
    finally:
        # Unlink while still holding the flock, so a waiter never locks a file about to vanish unseen.
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        os.close(fd)
