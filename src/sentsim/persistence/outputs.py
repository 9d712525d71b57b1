"""Checks an output file path before any work starts, so a bad ``-o`` fails in a second, not after an hour.

The write itself goes through :mod:`sentsim.persistence.atomic`; this module only decides whether
writing there is allowed: never onto a folder, never into a folder that does not exist, never over
the command's own input, and over an existing file only when the user asked (``force``).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from sentsim.errors import ConfigError

__all__ = ["check_folder_spares_inputs", "check_output_path"]


def check_output_path(
    path: str | os.PathLike[str],
    *,
    force: bool,
    inputs: Iterable[str | os.PathLike[str]] = (),
    force_flag: str = "--force",
    example_name: str = "output.npy",
) -> Path:
    """Returns ``path`` as a Path if an output file may be written there, else raises ConfigError.

    Args:
        path: the output file.
        force: whether an existing file may be replaced.
        inputs: files the command reads; the output may not be one of them (a hard or symbolic
            link to one counts as the same file), whatever ``force`` says.
        force_flag: how the caller lets users say ``force``, named in the error message.
        example_name: a file name to suggest when ``path`` is a folder.
    """
    raw = os.fspath(path)
    target = Path(raw).expanduser()
    if target.is_dir() or raw.endswith(("/", os.sep)):
        raise ConfigError(f"{target}: is a folder; give the output a file name, like {target / example_name}")
    parent = target.parent
    if not parent.is_dir():
        if parent.exists():
            raise ConfigError(f"{target}: {parent} is not a folder")
        raise ConfigError(f"{target}: the folder {parent} does not exist; create it first")
    for source in inputs:
        if _same_file(target, Path(source).expanduser()):
            raise ConfigError(f"{target}: is the input file {source}; writing there would destroy the input")
    if target.exists() and not force:
        raise ConfigError(f"{target} already exists; pass {force_flag} to replace it")
    if target.exists() and not target.is_file():
        raise ConfigError(f"{target}: exists and is not a regular file")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ConfigError(f"{target}: no permission to write in {parent}")
    return target


def check_folder_spares_inputs(folder: str | os.PathLike[str], inputs: Iterable[str | os.PathLike[str] | None], *,
                               flag: str = "--output") -> None:
    """ConfigError when writing the output ``folder`` (which replaces what is there, when asked to)
    would replace one of the command's inputs: the folder is an input, or holds one, whatever the
    overwrite flag says. An output inside an input folder is fine (nothing of the input is replaced)."""
    target = Path(folder).expanduser().resolve()
    for source in inputs:
        if source is None:
            continue
        path = Path(source).expanduser()
        if not path.exists():
            continue  # a hub name, not a path
        resolved = path.resolve()
        if resolved == target or target in resolved.parents:
            raise ConfigError(f"{flag} {folder}: {'is' if resolved == target else 'holds'} the input {source}; "
                              "writing the output folder there would replace it; choose another folder")


def _same_file(first: Path, second: Path) -> bool:
    if first.exists() and second.exists():
        return os.path.samefile(first, second)
    return first.resolve() == second.resolve()
