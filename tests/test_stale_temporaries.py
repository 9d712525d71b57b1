"""Temporary folders of atomic writes: owner markers, leftovers of killed processes found, named and removed."""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from sentsim.persistence.atomic import atomic_directory, find_stale_temporaries, remove_stale_temporaries
from sentsim.persistence.temporaries import MARKER_NAME, _process_start

pytestmark = pytest.mark.skipif(os.name == "nt", reason="POSIX process liveness checks")


def _python(code: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(code)], stderr=subprocess.PIPE, text=True)


def _killed_run(target: Path) -> Path:
    """A child process that starts building ``target`` and dies by SIGKILL; returns its leftover folder."""
    child = _python(f"""
        import os, signal
        from sentsim.persistence.atomic import atomic_directory
        with atomic_directory({str(target)!r}) as folder:
            (folder / "weights.bin").write_bytes(b"x" * 1000)
            os.kill(os.getpid(), signal.SIGKILL)
        """)
    child.wait(timeout=60)
    assert child.returncode == -signal.SIGKILL, child.stderr.read()
    leftovers = list(target.parent.glob(f".{target.name}.tmp-*"))
    assert len(leftovers) == 1
    return leftovers[0]


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def _fake_temporary(parent: Path, name: str, **record) -> Path:
    folder = parent / name
    folder.mkdir()
    (folder / MARKER_NAME).write_text(json.dumps({"host": socket.gethostname(), **record}))
    return folder


def test_the_marker_names_the_owner_and_is_gone_from_the_final_folder(tmp_path: Path):
    final = tmp_path / "model"
    with atomic_directory(final) as building:
        record = json.loads((building / MARKER_NAME).read_text())
        assert record["pid"] == os.getpid() and record["host"] == socket.gethostname()
        assert record["started"] == _process_start(os.getpid())
        assert find_stale_temporaries(tmp_path) == [], "our own folder is not stale"
        (building / "file.txt").write_text("x")
    assert sorted(path.name for path in final.iterdir()) == ["file.txt"]


def test_a_sigkilled_run_leaves_a_folder_that_is_found_named_and_removed(tmp_path: Path, caplog):
    leftover = _killed_run(tmp_path / "run")
    assert find_stale_temporaries(tmp_path) == [leftover]
    with caplog.at_level(logging.WARNING), atomic_directory(tmp_path / "other"):
        pass
    warning = caplog.text
    assert leftover.name in warning and f"sentsim clean {tmp_path}" in warning
    assert remove_stale_temporaries(tmp_path) == [leftover]
    assert not leftover.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["other"]


def test_folders_of_live_processes_and_unmarked_folders_are_left_alone(tmp_path: Path):
    target = tmp_path / "run"
    child = _python(f"""
        import time
        from sentsim.persistence.atomic import atomic_directory
        with atomic_directory({str(target)!r}) as folder:
            time.sleep(60)
        """)
    try:
        deadline = time.monotonic() + 30
        while not list(tmp_path.glob(".run.tmp-*/" + MARKER_NAME)) and time.monotonic() < deadline:
            time.sleep(0.05)
        live = list(tmp_path.glob(".run.tmp-*"))
        assert len(live) == 1
        unmarked = tmp_path / ".old.tmp-0123abcd"
        unmarked.mkdir()
        elsewhere = _fake_temporary(tmp_path, ".x.tmp-00000001", pid=_dead_pid(), started=None, host="not-this-host")
        regular = _fake_temporary(tmp_path, "plain", pid=_dead_pid(), started=None)
        assert find_stale_temporaries(tmp_path) == []
        assert remove_stale_temporaries(tmp_path) == []
        assert live[0].is_dir() and unmarked.is_dir() and elsewhere.is_dir() and regular.is_dir()
    finally:
        child.terminate()
        child.wait(timeout=30)


def test_a_reused_pid_counts_as_dead_and_a_garbled_marker_as_alive(tmp_path: Path):
    live_pid = os.getppid()
    reused = _fake_temporary(tmp_path, ".a.tmp-00000001", pid=live_pid, started="1")
    same = _fake_temporary(tmp_path, ".b.tmp-00000002", pid=live_pid, started=_process_start(live_pid))
    dead = _fake_temporary(tmp_path, ".c.tmp-00000003", pid=_dead_pid(), started=None)
    garbled = tmp_path / ".d.tmp-00000004"
    garbled.mkdir()
    (garbled / MARKER_NAME).write_text("{not json")
    for bad_pid in (0, -1, "12", True):
        _fake_temporary(tmp_path, f".e{bad_pid}.tmp-00000005", pid=bad_pid, started=None)
    expected = [reused, dead] if _process_start(live_pid) is not None else [dead]
    assert find_stale_temporaries(tmp_path) == expected
    assert same.is_dir()


def test_interrupts_inside_the_body_remove_the_temporary(tmp_path: Path):
    for interrupt in (KeyboardInterrupt, SystemExit):
        with pytest.raises(interrupt), atomic_directory(tmp_path / "model") as building:
            (building / "half.bin").write_bytes(b"x")
            raise interrupt()
    assert list(tmp_path.iterdir()) == []


def test_sigterm_handled_as_an_exception_removes_the_temporary(tmp_path: Path):
    child = _python(f"""
        import os, signal, sys, time
        from sentsim.persistence.atomic import atomic_directory
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
        with atomic_directory({str(tmp_path / "run")!r}) as folder:
            (folder / "ready").write_text("")
            time.sleep(60)
        """)
    deadline = time.monotonic() + 30
    while not list(tmp_path.glob(".run.tmp-*/ready")) and time.monotonic() < deadline:
        time.sleep(0.05)
    child.send_signal(signal.SIGTERM)
    assert child.wait(timeout=30) == 143
    assert list(tmp_path.iterdir()) == []


def test_sigterm_during_encode_exits_143_and_leaves_no_temporary(tiny_model, tmp_path: Path):
    model = tiny_model.save(tmp_path / "model")
    lines = tmp_path / "lines.txt"
    lines.write_text("".join(f"sentence number {index} about a dog in a park\n" for index in range(400_000)))
    output = tmp_path / "out" / "vectors.npy"
    output.parent.mkdir()
    child = subprocess.Popen([sys.executable, "-m", "sentsim", "encode", str(model), str(lines), "--output",
                              str(output), "--chunk-lines", "2000", "--backend", "torch"],
                             stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not list(output.parent.glob(".*tmp-*")) and time.monotonic() < deadline and child.poll() is None:
        time.sleep(0.05)
    assert child.poll() is None, "encode finished before it could be stopped"
    child.send_signal(signal.SIGTERM)
    assert child.wait(timeout=60) == 143
    assert "terminated" in child.stderr.read()
    assert list(output.parent.iterdir()) == []  # no output, no hidden temporary
