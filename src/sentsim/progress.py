"""Progress bars for long loops (encoding, training, evaluation), shown only where a person watches.

A bar redrawn with carriage returns is useful in a terminal and garbage in a log file, a CI log or
captured test output, so bars switch themselves off unless stderr is an interactive terminal.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable
from typing import Any

from tqdm import tqdm

__all__ = ["progress_bar", "progress_enabled"]

# Variables that ask for silence when the caller did not decide either way.
_QUIET_VARIABLES = ("SENTSIM_QUIET", "CI")
_FALSE_VALUES = frozenset({"", "0", "false", "no", "off"})


def _variable_set(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() not in _FALSE_VALUES


def _stderr_is_terminal() -> bool:
    # Looked up at call time: tests and servers swap sys.stderr after import.
    stream = sys.stderr
    try:
        return stream is not None and stream.isatty()
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


def progress_enabled(quiet: bool | None = None) -> bool:
    """Say whether progress bars should be drawn.

    Args:
        quiet: ``True`` turns bars off. ``None`` (the default, "caller has no opinion") also turns
            them off when ``SENTSIM_QUIET`` or ``CI`` is set to a true-ish value. ``False`` ignores
            those variables, but still draws nothing unless stderr is a terminal, because a bar in a
            redirected log is never what anyone wants.
    """
    if quiet:
        return False
    if quiet is None and any(_variable_set(name) for name in _QUIET_VARIABLES):
        return False
    return _stderr_is_terminal()


def progress_bar(
    iterable: Iterable[Any] | None = None,
    *,
    total: float | None = None,
    desc: str = "",
    unit: str = "it",
    quiet: bool | None = None,
    leave: bool = True,
) -> tqdm:
    """Wrap ``iterable`` (or make a manual bar when it is ``None``) in a tqdm bar on stderr.

    The bar is created even when disabled, so callers can always iterate it or call ``update`` and
    ``set_postfix`` without checking :func:`progress_enabled` themselves; a disabled bar costs
    almost nothing and prints nothing.

    Args:
        iterable: what to iterate; ``None`` for a bar advanced with ``update``.
        total: expected number of items; taken from ``len(iterable)`` by tqdm when omitted.
        desc: short label in front of the bar.
        unit: name of one item ("pairs", "batches").
        quiet: see :func:`progress_enabled`.
        leave: keep the finished bar on screen.
    """
    return tqdm(
        iterable,
        total=total,
        desc=desc,
        unit=unit,
        leave=leave,
        file=sys.stderr,
        dynamic_ncols=True,
        disable=not progress_enabled(quiet),
    )
