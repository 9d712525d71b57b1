"""Tests for sentsim.atomic: all-or-nothing writes with normal permissions."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from sentsim.persistence.atomic import atomic_directory, atomic_write_bytes, atomic_write_json, atomic_write_text


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_write_text_bytes_and_json(tmp_path: Path) -> None:
    assert atomic_write_text(tmp_path / "a.txt", "héllo\n") == tmp_path / "a.txt"
    assert (tmp_path / "a.txt").read_text(encoding="utf-8") == "héllo\n"
    atomic_write_bytes(tmp_path / "b.bin", b"\x00\x01")
    assert (tmp_path / "b.bin").read_bytes() == b"\x00\x01"
    atomic_write_json(tmp_path / "c.json", {"z": 1, "a": [1, 2], "name": "café"})
    text = (tmp_path / "c.json").read_text(encoding="utf-8")
    assert text.endswith("}\n")
    assert text.index('"z"') < text.index('"a"'), "keys keep insertion order"
    assert '  "z": 1' in text and "café" in text
    assert json.loads(text) == {"z": 1, "a": [1, 2], "name": "café"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt", "b.bin", "c.json"], "no temp files left"


def test_write_replaces_and_uses_umask_mode(tmp_path: Path) -> None:
    target = tmp_path / "file.txt"
    atomic_write_text(target, "old")
    atomic_write_text(target, "new")
    assert target.read_text() == "new"
    assert _mode(target) == 0o666 & ~_umask()


def test_failed_write_keeps_old_file_and_leaves_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "file.json"
    atomic_write_text(target, "old")
    with pytest.raises(TypeError):
        atomic_write_json(target, {"not serialisable": object()})
    with pytest.raises(TypeError):
        atomic_write_bytes(target, "not bytes")  # type: ignore[arg-type]
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["file.json"]


def test_atomic_directory_creates_and_replaces(tmp_path: Path) -> None:
    final = tmp_path / "model"
    with atomic_directory(final) as building:
        assert building.parent == tmp_path
        assert building.name.startswith(".model.tmp-")
        assert _mode(building) == 0o777 & ~_umask()
        (building / "weights.bin").write_bytes(b"1")
        assert not final.exists(), "nothing visible before the block ends"
    assert (final / "weights.bin").read_bytes() == b"1"
    assert _mode(final) == 0o777 & ~_umask()

    with atomic_directory(final) as building:
        (building / "other.bin").write_bytes(b"2")
    assert [p.name for p in final.iterdir()] == ["other.bin"], "old folder replaced, not merged"
    assert [p.name for p in tmp_path.iterdir()] == ["model"], "no temp or old folders left"


def test_atomic_directory_failure_keeps_existing(tmp_path: Path) -> None:
    final = tmp_path / "model"
    final.mkdir()
    (final / "weights.bin").write_bytes(b"old")
    with pytest.raises(RuntimeError, match="boom"), atomic_directory(final) as building:
        (building / "weights.bin").write_bytes(b"new")
        raise RuntimeError("boom")
    assert (final / "weights.bin").read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["model"]


def test_atomic_directory_failure_without_existing(tmp_path: Path) -> None:
    with pytest.raises(KeyError), atomic_directory(tmp_path / "fresh"):
        raise KeyError("x")
    assert list(tmp_path.iterdir()) == []
