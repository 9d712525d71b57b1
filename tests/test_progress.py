"""Tests for sentsim.progress: bars only where a person watches a terminal."""

from __future__ import annotations

import io
import sys

import pytest

from sentsim.progress import progress_bar, progress_enabled


class _FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def _use_terminal(monkeypatch: pytest.MonkeyPatch) -> _FakeTerminal:
    # Called inside each test, not from a fixture: pytest's output capture puts its own sys.stderr
    # back between fixture set-up and the test call.
    stream = _FakeTerminal()
    monkeypatch.setattr(sys, "stderr", stream)
    for name in ("SENTSIM_QUIET", "CI"):
        monkeypatch.delenv(name, raising=False)
    return stream


def test_off_when_stderr_is_not_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "stderr", io.StringIO())
    assert progress_enabled() is False
    assert progress_enabled(quiet=False) is False
    bar = progress_bar(range(3), desc="x")
    assert bar.disable
    assert list(bar) == [0, 1, 2], "a disabled bar still iterates"
    assert sys.stderr.getvalue() == ""


def test_on_in_a_terminal_and_off_when_quiet(monkeypatch: pytest.MonkeyPatch) -> None:
    terminal = _use_terminal(monkeypatch)
    assert progress_enabled() is True
    assert progress_enabled(quiet=True) is False
    assert progress_bar(range(2), quiet=True).disable
    with progress_bar(total=4, desc="encoding", unit="pairs") as bar:
        assert not bar.disable
        bar.update(4)
    assert "encoding" in terminal.getvalue()
    assert "pairs" in terminal.getvalue()


@pytest.mark.parametrize("name", ["SENTSIM_QUIET", "CI"])
def test_environment_silences_unless_caller_decided(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    _use_terminal(monkeypatch)
    monkeypatch.setenv(name, "1")
    assert progress_enabled() is False
    assert progress_enabled(quiet=False) is True
    monkeypatch.setenv(name, "false")
    assert progress_enabled() is True
