"""Progress bars for long loops (encoding, training, evaluation), shown only where a person watches.

A bar redrawn with carriage returns is useful in a terminal and garbage in a log file, a CI log or
captured test output, so bars switch themselves off unless stderr is an interactive terminal.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterable
from typing import Any, TextIO

from tqdm import tqdm

__all__ = ["ProgressLog", "TrainingLog", "format_duration", "log_lines_enabled", "progress_bar", "progress_enabled"]

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


# -- plain log lines for a training run: what a redirected stderr (a log file, CI, nohup) gets ----------
def log_lines_enabled(quiet: bool | None = None) -> bool:
    """Say whether a long job should print its plain status lines (start, estimate, progress).

    ``quiet=True`` and, when the caller did not decide, ``SENTSIM_QUIET`` silence them; ``CI`` does
    not, since a CI log is exactly where a redirected run needs them.
    """
    if quiet:
        return False
    return not (quiet is None and _variable_set("SENTSIM_QUIET"))


def format_duration(seconds: float) -> str:
    """``42 s``, ``3 min 05 s``, ``1 h 02 min``: a duration a person reads at a glance."""
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {seconds:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


class TrainingLog:
    """Status lines of one training run on stderr.

    Always (unless quiet): a start line (device, dtype and why, steps) and, after the first few steps,
    an estimated duration. Only where no bar is drawn (stderr is not a terminal): a progress line every
    ``every_steps`` steps or ``every_seconds`` seconds, whichever comes first, and one per evaluation.
    The loop passes cumulative figures (pairs seen, seconds spent training, evaluations excluded).
    """

    #: The estimate is made from the steps after the first (which pays one-time costs).
    ESTIMATE_AFTER_STEPS = 6
    ESTIMATE_AFTER_SECONDS = 20.0

    def __init__(self, total_steps: int, *, steps_per_epoch: int, evaluations: int = 0,
                 every_steps: int | None = None, every_seconds: float = 30.0, quiet: bool | None = None,
                 stream: TextIO | None = None) -> None:
        self.total_steps = max(1, total_steps)
        self.steps_per_epoch = max(1, steps_per_epoch)
        self.evaluations = evaluations
        self.every_steps = every_steps or max(1, self.total_steps // 10)
        self.every_seconds = every_seconds
        self.stream = stream
        self.enabled = log_lines_enabled(quiet)
        self.periodic = self.enabled and not progress_enabled(quiet)
        self.evaluation_seconds: float | None = None
        self._first: tuple[int, float] | None = None
        self._estimated = False
        self._last = (0, 0, 0.0, time.perf_counter())  # step, pairs, train seconds, clock at the last line
        self._loss_sum, self._loss_count = 0.0, 0

    def write(self, line: str) -> None:
        if not self.enabled:
            return
        if self.stream is not None:
            print(line, file=self.stream, flush=True)
        else:  # around a live bar in a terminal; a plain line otherwise
            tqdm.write(line, file=sys.stderr)

    def start(self, *, device: str, dtype: str, reason: str, epochs: int, batch_size: int,
              sequences_per_step: int | None = None) -> None:
        per_step = f" ({sequences_per_step} sequences per forward)" if sequences_per_step else ""
        self.write(f"training on {device}, {dtype}: {reason}; {self.total_steps} steps = {epochs} epoch(s) of "
                   f"{self.steps_per_epoch} steps, batch {batch_size}{per_step}")

    def step(self, step: int, *, pairs: int, train_seconds: float, loss: float) -> None:
        """After each optimizer step: the estimate once, then periodic lines where no bar is drawn."""
        self._loss_sum += loss
        self._loss_count += 1
        if self._first is None:
            self._first = (step, train_seconds)
        elif not self._estimated and (step - self._first[0] + 1 >= self.ESTIMATE_AFTER_STEPS
                                      or train_seconds - self._first[1] >= self.ESTIMATE_AFTER_SECONDS):
            self._estimate(step, train_seconds)
        last_step, last_pairs, last_seconds, last_clock = self._last
        due = (step - last_step >= self.every_steps or time.perf_counter() - last_clock >= self.every_seconds
               or step == self.total_steps)
        if not (self.periodic and due):
            return
        rate = (pairs - last_pairs) / max(train_seconds - last_seconds, 1e-9)
        remaining = self._seconds_per_step(step, train_seconds) * (self.total_steps - step)
        self.write(f"step {step}/{self.total_steps}  epoch {step / self.steps_per_epoch:.2f}  "
                   f"loss {self._loss_sum / self._loss_count:.4f}  {rate:.1f} pairs/s  "
                   f"ETA {format_duration(remaining)}")
        self._last = (step, pairs, train_seconds, time.perf_counter())
        self._loss_sum, self._loss_count = 0.0, 0

    def evaluation(self, step: int, *, metric: str, score: float, best: float, seconds: float) -> None:
        """One line per dev evaluation (where no bar is drawn); the first one times the rest."""
        if self.evaluation_seconds is None:
            self.evaluation_seconds = seconds
        self._last = (*self._last[:3], time.perf_counter())  # the seconds between lines count training only
        if self.periodic:
            self.write(f"eval step {step}/{self.total_steps}  dev {metric} {score:.2f}  best {best:.2f}  "
                       f"({format_duration(seconds)})")

    def _seconds_per_step(self, step: int, train_seconds: float) -> float:
        if self._first is None or step <= self._first[0]:
            return train_seconds / max(step, 1)
        return (train_seconds - self._first[1]) / (step - self._first[0])

    def _estimate(self, step: int, train_seconds: float) -> None:
        self._estimated = True
        training = train_seconds + self._seconds_per_step(step, train_seconds) * (self.total_steps - step)
        evaluating = (self.evaluation_seconds or 0.0) * self.evaluations
        extra = (f" + {self.evaluations} dev evaluation(s) ≈ {format_duration(evaluating)}"
                 if self.evaluations and self.evaluation_seconds is not None else "")
        self.write(f"estimated training time {format_duration(training)}{extra} "
                   f"(from steps {self._first[0] + 1}–{step})")


class ProgressLog:
    """Progress of a job with a known total (lines to encode): a bar in a terminal, else plain lines.

    Where stderr is redirected, writes ``desc: 20,000 / 200,000 lines (10%), 1,530 lines/s, 13 s``
    every ``every`` calls of :meth:`update` and once at :meth:`close`; nothing when quiet (see
    :func:`log_lines_enabled`).
    """

    def __init__(self, total: int, *, desc: str, unit: str = "it", quiet: bool | None = None, every: int = 1,
                 stream: TextIO | None = None) -> None:
        self.total, self.desc, self.unit, self.every, self.stream = total, desc, unit, max(1, every), stream
        self.done = self._updates = 0
        self._started = time.perf_counter()
        self._bar = progress_bar(total=total, desc=desc, unit=unit, quiet=quiet) if progress_enabled(quiet) else None
        self._lines = self._bar is None and log_lines_enabled(quiet)

    def update(self, count: int) -> None:
        self.done += count
        self._updates += 1
        if self._bar is not None:
            self._bar.update(count)
        elif self._lines and self._updates % self.every == 0 and self.done < self.total:
            self._write()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
        elif self._lines:
            self._write()

    def _write(self) -> None:
        elapsed = max(time.perf_counter() - self._started, 1e-9)
        share = f" ({100 * self.done / self.total:.0f}%)" if self.total else ""
        print(f"{self.desc}: {self.done:,} / {self.total:,} {self.unit}{share}, {self.done / elapsed:,.0f} "
              f"{self.unit}/s, {format_duration(elapsed)}", file=self.stream or sys.stderr, flush=True)
