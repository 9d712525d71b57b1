"""Atomic file and folder writes: readers see the old content or the new, never half of either.

Runs are long and get interrupted (Ctrl-C, OOM killer, a full disk); a report, a summary or a
saved model that was half written when that happened looks valid and is not. Everything here writes
next to the destination first and then renames, because a rename inside one folder is atomic on
POSIX and Windows alike, while a rename across file systems is not.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

from sentsim.persistence.model_files import is_model_entry
from sentsim.persistence.temporaries import (
    MARKER_NAME,
    find_stale_temporaries,
    remove_stale_temporaries,
    warn_about_stale_temporaries,
    write_owner_marker,
)

__all__ = ["atomic_directory", "atomic_open", "atomic_save_into", "atomic_write_bytes", "atomic_write_json",
           "atomic_write_text", "find_stale_temporaries", "remove_stale_temporaries"]

_ATTEMPTS = 100


def _fsync_directory(folder: Path) -> None:
    """Make a rename inside ``folder`` durable; best effort, as some platforms cannot open folders."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _open_new_sibling(path: Path) -> tuple[Path, int]:
    """Create and open an unused file next to ``path``.

    ``tempfile.mkstemp`` would do this but creates mode 0600; opening with 0666 lets the process
    umask decide, so the final file gets the same mode as one written with plain ``open``.
    """
    for _ in range(_ATTEMPTS):
        candidate = path.with_name(f".{path.name}.tmp-{secrets.token_hex(4)}")
        try:
            fd = os.open(candidate, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
        except FileExistsError:
            continue
        return candidate, fd
    raise FileExistsError(f"could not find a free temporary name next to {path}")


def _make_new_sibling_folder(final: Path, kind: str) -> Path:
    """Create an unused folder ``.{final.name}.{kind}-XXXX`` next to ``final`` with umask-decided mode.

    ``tempfile.mkdtemp`` would give 0700, which would make a published model folder unreadable to
    other users of a shared machine.
    """
    for _ in range(_ATTEMPTS):
        candidate = final.with_name(f".{final.name}.{kind}-{secrets.token_hex(4)}")
        try:
            candidate.mkdir(mode=0o777)
        except FileExistsError:
            continue
        return candidate
    raise FileExistsError(f"could not find a free temporary folder name next to {final}")


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``path`` so that ``path`` never holds a partial write.

    The data goes to a temporary file in the same folder, is flushed and fsynced, then renamed over
    ``path``. On any error the temporary file is removed and ``path`` is left as it was.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.
    """
    with atomic_open(path) as handle:
        handle.write(data)
    return Path(path)


def atomic_write_text(path: str | os.PathLike[str], text: str, *, encoding: str = "utf-8") -> Path:
    """Write ``text`` to ``path`` atomically (see :func:`atomic_write_bytes`).

    The text is written as given: no newline translation, so files are identical on every platform.
    """
    return atomic_write_bytes(path, text.encode(encoding))


def atomic_write_json(path: str | os.PathLike[str], obj: Any) -> Path:
    """Write ``obj`` as JSON to ``path`` atomically: indent 2, keys in insertion order, trailing newline.

    Insertion order is kept (not sorted) so files read in the order the writer thought sensible;
    non-ASCII text stays readable instead of becoming ``\\u`` escapes.
    """
    text = json.dumps(obj, indent=2, sort_keys=False, ensure_ascii=False) + "\n"
    return atomic_write_text(path, text)


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike[str]) -> Iterator[BinaryIO]:
    """A binary file to write ``path`` piece by piece: it appears at ``path`` only if the body succeeds.

    For outputs too large to hold in memory (streamed embeddings); like :func:`atomic_write_bytes`
    the data goes to a hidden sibling, is fsynced and renamed over ``path``, and on any error
    (KeyboardInterrupt included) the sibling is removed and ``path`` is left as it was.
    """
    target = Path(path)
    temporary, fd = _open_new_sibling(target)
    try:
        with os.fdopen(fd, "wb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            temporary.unlink()
        raise
    _fsync_directory(target.parent)


@contextlib.contextmanager
def atomic_directory(final: str | os.PathLike[str]) -> Iterator[Path]:
    """Build a folder in a temporary place and put it at ``final`` only if building succeeds.

    Yields a fresh empty folder ``.{final.name}.tmp-XXXX`` next to ``final`` (same parent, so the
    closing rename stays on one file system). On normal exit the temporary folder replaces
    ``final``: an existing ``final`` is first moved aside, the new folder renamed into place and
    only then the old one deleted, so at every moment either the old or the new folder is complete.
    If the body raises (KeyboardInterrupt and SystemExit included), the temporary folder is deleted
    and an existing ``final`` is untouched.

    While it is built, the folder holds an owner marker (``.sentsim-owner.json``: PID, start time,
    host; removed before the rename) so that one a SIGKILL left behind can be told apart from one a
    live process is still building; leftovers of dead processes next to ``final`` are named in a
    logged warning with the ``sentsim clean`` command that removes them.
    """
    target = Path(final)
    target.parent.mkdir(parents=True, exist_ok=True)
    warn_about_stale_temporaries(target.parent)
    temporary = _make_new_sibling_folder(target, "tmp")
    try:
        write_owner_marker(temporary)
        yield temporary
        (temporary / MARKER_NAME).unlink(missing_ok=True)
    except BaseException:
        shutil.rmtree(temporary, ignore_errors=True)
        raise

    try:
        if target.exists() or target.is_symlink():
            _swap_in(temporary, target)
        else:
            os.replace(temporary, target)
            _fsync_directory(target.parent)
    except BaseException:
        shutil.rmtree(temporary, ignore_errors=True)
        raise


def copy_directory(source: str | os.PathLike[str], final: str | os.PathLike[str], *,
                   replace_files: dict[str, str] | None = None, leave_out: tuple[str, ...] = ()) -> Path:
    """Copies the folder ``source`` to ``final`` atomically (see ``atomic_save_into``: what else ``final``
    holds stays), with the text files in ``replace_files`` (name → content) written over or beside the
    copied ones, and the top-level files named in ``leave_out`` not copied.

    For a model folder that cannot be re-serialised from memory (an ONNX export): saving a changed
    copy of it, its calibration say, is copying it with that one file replaced.
    """
    source, target = Path(source), Path(final)
    if target.resolve() == source.resolve() or source.resolve() in target.resolve().parents:
        raise ValueError(f"cannot copy {source} onto itself or into itself ({target})")
    with atomic_save_into(target) as temporary:
        patterns = shutil.ignore_patterns(MARKER_NAME, ".*.tmp-*", ".*.old-*")

        def ignore(folder: str, names: list[str]) -> set[str]:
            left_out = {name for name in names if name in leave_out} if Path(folder) == source else set()
            return set(patterns(folder, names)) | left_out

        shutil.copytree(source, temporary, dirs_exist_ok=True, ignore=ignore)
        for name, text in (replace_files or {}).items():
            (temporary / name).write_text(text, encoding="utf-8")
    return target


#: Written last when files go into an existing folder: a loader reads these first, so until they are
#: in, the folder still describes the model it held before.
_WRITTEN_LAST = ("config_sentence_transformers.json", "modules.json")


@contextlib.contextmanager
def atomic_save_into(final: str | os.PathLike[str]) -> Iterator[Path]:
    """Like ``atomic_directory``, but an existing ``final`` keeps everything the save does not write.

    A model saved into a folder that already holds other things (a user's notes, an evaluation
    folder) leaves them there, as sentence-transformers' ``save`` does: the files and folders of the
    same names are replaced, each one atomically, ``modules.json`` and the model config last, and what
    belonged to the model there before but not to this one (an ``onnx/`` export or ``calibration.json``
    of the old weights, see ``model_files``) is removed, since it would be used with the new weights.
    A new or empty ``final`` gets the whole-folder rename of
    ``atomic_directory``. ``final`` being a file is refused: that would delete it.
    """
    target = Path(final)
    if (target.is_symlink() and not target.exists()) or (target.exists() and not target.is_dir()):
        raise FileExistsError(f"{target} exists and is not a folder: a model is saved into a folder")
    if not target.is_dir() or not any(target.iterdir()):
        with atomic_directory(target) as temporary:
            yield temporary
        return
    temporary = _make_new_sibling_folder(target, "tmp")
    try:
        write_owner_marker(temporary)
        yield temporary
        (temporary / MARKER_NAME).unlink(missing_ok=True)
        names = sorted((entry.name for entry in temporary.iterdir()),
                       key=lambda name: (_WRITTEN_LAST.index(name) + 1 if name in _WRITTEN_LAST else 0, name))
        for name in names:
            _replace_entry(temporary / name, target / name)
        if "modules.json" in names or "config.json" in names:  # a model replaced the one there: drop its leftovers
            for entry in target.iterdir():
                if entry.name not in names and is_model_entry(entry.name):
                    _remove(entry)
        _fsync_directory(target)
    finally:
        shutil.rmtree(temporary, ignore_errors=True)


def _remove(entry: Path, *, ignore_errors: bool = False) -> None:
    """Deletes a file, a link or a whole folder (not what a link points to)."""
    if entry.is_dir() and not entry.is_symlink():
        shutil.rmtree(entry, ignore_errors=ignore_errors)
    else:
        entry.unlink()


def _replace_entry(new: Path, old: Path) -> None:
    """Puts ``new`` at ``old``'s place in one rename; a folder (or a file of another kind) there first steps aside."""
    if (old.is_dir() and not old.is_symlink()) or (old.exists() and new.is_dir()):
        _swap_in(new, old)
    else:
        os.replace(new, old)


def _swap_in(new: Path, old: Path) -> None:
    """Renames ``new`` to the existing ``old``'s name. A rename cannot land on a non-empty folder, so ``old``
    first steps aside to a hidden name, and it is deleted only once ``new`` is in place (and that is durable)."""
    aside = old.with_name(f".{old.name}.old-{secrets.token_hex(4)}")
    os.replace(old, aside)
    try:
        os.replace(new, old)
    except BaseException:
        os.replace(aside, old)
        raise
    _fsync_directory(old.parent)
    _remove(aside, ignore_errors=True)
