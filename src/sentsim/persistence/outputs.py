"""Checks an output file path before any work starts, so a bad ``-o`` fails in a second, not after an hour.

The write itself goes through :mod:`sentsim.persistence.atomic`; this module only decides whether
writing there is allowed: never onto a folder, never into a folder that does not exist, never over
the command's own input, and over an existing file only when the user asked (``force``).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from sentsim.data.lines import dangling_symlink
from sentsim.errors import ConfigError

__all__ = ["check_folder_spares_inputs", "check_model_output", "check_output_path", "refuse_working_folder"]


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


def refuse_working_folder(target: Path, flag: str, *, example: str) -> None:
    """ConfigError when the output folder ``target`` is the current folder or one above it, the file-system
    root or the home folder: folders holding the user's work, never a command's output."""
    resolved = target.resolve()
    cwd = Path.cwd().resolve()
    if resolved == cwd or resolved in cwd.parents:
        where = "the current folder" if resolved == cwd else f"a folder holding the current folder ({cwd})"
        raise ConfigError(f"{flag} {target}: is {where}; give a new folder, such as {example}")
    if resolved == Path(resolved.anchor) or resolved == Path.home().resolve():
        raise ConfigError(f"{flag} {target}: is {resolved}; give a new folder, such as {example}")


#: What marks a folder as a model folder, which ``--overwrite`` may write a model into.
_MODEL_FILES = ("modules.json", "config_sentence_transformers.json", "config.json")


def check_model_output(folder: str | os.PathLike[str], *, overwrite: bool,
                       inputs: Iterable[str | os.PathLike[str] | None] = (), flag: str = "--output",
                       overwrite_flag: str = "--overwrite") -> Path:
    """Returns ``folder`` if a command may save a model there, else raises ConfigError (one line).

    Allowed: a missing folder or an empty one; with ``overwrite`` a model folder (``modules.json`` or a
    transformers ``config.json``), whose model files are then replaced and everything else kept.
    Refused whatever the flags: a file, a folder that is not a model's (a user's working folder would get
    a model's ``config.json`` and ``README.md`` over its own), the current folder or one above it, the
    file-system root and the home folder, an input of the command, and a folder that cannot be written.
    """
    target = Path(folder).expanduser()
    try:
        refuse_working_folder(target, flag, example="calibrated-model")
    except (OSError, RuntimeError) as error:  # a symlink loop
        raise ConfigError(f"{flag} {folder}: cannot be resolved ({error})") from None
    if (link := dangling_symlink(target)) is not None:
        raise ConfigError(f"{flag} {folder}: {link}")
    if target.exists() and not target.is_dir():
        raise ConfigError(f"{flag} {folder}: exists and is not a folder; it is never replaced")
    check_folder_spares_inputs(target, inputs, flag=flag)
    if target.is_dir() and any(target.iterdir()):
        if not overwrite:
            raise ConfigError(f"{flag} {folder}: already exists; pass {overwrite_flag} to write the model into it")
        if not any((target / name).is_file() for name in _MODEL_FILES):
            shown = ", ".join(sorted(entry.name for entry in target.iterdir())[:3])
            raise ConfigError(f"{flag} {folder}: is not a model folder (it holds {shown}); a model is written "
                              "only into a new folder or over another model, choose a new folder")
    existing = next((parent for parent in [target, *target.parents] if parent.exists()), None)
    if existing is not None and not (existing.is_dir() and os.access(existing, os.W_OK | os.X_OK)):
        raise ConfigError(f"{flag} {folder}: no permission to write in {existing}")
    return target


def _same_file(first: Path, second: Path) -> bool:
    if first.exists() and second.exists():
        return os.path.samefile(first, second)
    return first.resolve() == second.resolve()
