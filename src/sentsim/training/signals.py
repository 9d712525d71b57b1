"""SIGINT and SIGTERM during training: stop at the next step boundary, save a checkpoint, say how to resume.

Outside the training loop a signal interrupts at once (:class:`Interrupted`, a ``BaseException`` like
``KeyboardInterrupt``, so every ``atomic_directory`` on the way out removes its temporary folder).
Inside it (:func:`deferred`) the first signal only sets a flag that the loop reads after each step,
so the checkpoint it then saves is a consistent one; a second signal interrupts at once.
"""

from __future__ import annotations

import contextlib
import functools
import signal
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import ParamSpec, TypeVar

__all__ = ["Interrupted", "TrainingInterrupted", "deferred", "handled", "pending", "stop_at_step_boundaries"]

P = ParamSpec("P")
R = TypeVar("R")

_SIGNALS = (signal.SIGINT, signal.SIGTERM)
_state: dict[str, int | bool | None] = {"deferring": False, "pending": None}


class Interrupted(KeyboardInterrupt):  # a KeyboardInterrupt, so code that handles Ctrl-C handles it
    """A run stopped by SIGINT or SIGTERM; ``exit_code`` is 128 + the signal number (130, 143)."""

    def __init__(self, signum: int, message: str | None = None) -> None:
        self.signum = signum
        self.exit_code = 128 + signum
        super().__init__(message or f"interrupted by {signal.Signals(signum).name}; nothing was saved")


class TrainingInterrupted(Interrupted):
    """Stopped by a signal after saving a checkpoint; the message carries the exact resume command."""

    def __init__(self, signum: int, *, checkpoint: Path, resume_command: str) -> None:
        self.checkpoint = checkpoint
        self.resume_command = resume_command
        super().__init__(signum, f"interrupted by {signal.Signals(signum).name}; checkpoint saved in {checkpoint}\n"
                                 f"resume with: {resume_command}")


def _handler(signum: int, frame: object) -> None:
    if _state["deferring"] and _state["pending"] is None:
        _state["pending"] = signum
        return
    raise Interrupted(signum)


@contextlib.contextmanager
def handled() -> Iterator[None]:
    """SIGINT and SIGTERM raise :class:`Interrupted` (or, inside :func:`deferred`, wait for a step boundary).

    Only the main thread can install handlers; elsewhere (a server's worker thread) nothing changes.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {signum: signal.signal(signum, _handler) for signum in _SIGNALS}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


@contextlib.contextmanager
def deferred() -> Iterator[None]:
    """Inside: the first signal is only remembered (see :func:`pending`); handlers installed if not yet."""
    with handled():
        _state["deferring"], _state["pending"] = True, None
        try:
            yield
        finally:
            _state["deferring"], _state["pending"] = False, None


def pending() -> int | None:
    """The signal that asked the loop to stop, or None."""
    value = _state["pending"]
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def stop_at_step_boundaries(function: Callable[P, R]) -> Callable[P, R]:
    """Runs ``function`` (a training loop) inside :func:`deferred`."""
    @functools.wraps(function)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        with deferred():
            return function(*args, **kwargs)

    return wrapper
