"""What the CLI tests share: pair files, an STSb-style folder, running ``main`` and checking its output.

The tiny model folder, the pair files and a trained run are fixtures in conftest.py."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import pytest

from sentsim.cli import EXIT_USAGE, main

from .conftest import TRAIN_PAIRS

HEADER = "sentence1\tsentence2\tscore\n"
GOOD_ROW = "a man is playing a flute\ta man is playing a guitar\t3\n"


def pair_file(path: Path, pairs: Sequence[tuple[str, str, float]] = TRAIN_PAIRS) -> Path:
    """A TSV pair file with scores scaled from 0–1 to the default 0–5 range."""
    path.write_text(HEADER + "".join(f"{a}\t{b}\t{score * 5:g}\n" for a, b, score in pairs), encoding="utf-8")
    return path


def stsb_folder(folder: Path) -> Path:
    """A folder in the STS benchmark's own layout (sts-train/dev/test.csv, tab-separated) from TRAIN_PAIRS."""
    folder.mkdir(parents=True, exist_ok=True)
    orders = {"train": TRAIN_PAIRS, "dev": TRAIN_PAIRS[::-1], "test": TRAIN_PAIRS[1:] + TRAIN_PAIRS[:1]}
    for split, pairs in orders.items():
        rows = [f"main-captions\tMSRvid\t2012test\t{index:04d}\t{score * 5:.3f}\t{a}\t{b}\n"
                for index, (a, b, score) in enumerate(pairs)]
        (folder / f"sts-{split}.csv").write_text("".join(rows), encoding="utf-8")
    return folder


def run_cli(capsys: pytest.CaptureFixture[str], *argv: object) -> tuple[int, str, str]:
    capsys.readouterr()  # drop anything an earlier step of the same test printed
    code = main([str(arg) for arg in argv])
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(code: int, err: str, *fragments: str) -> str:
    """Exit 2, exactly one ``error: ...`` line on stderr (no traceback), holding every fragment."""
    assert code == EXIT_USAGE, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("error: "), err
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in lines[0], f"{fragment!r} not in {lines[0]!r}"
    return lines[0]


def no_leftovers(run: Path) -> None:
    assert not run.exists()
    assert not list(run.parent.glob(f".{run.name}.*")), list(run.parent.iterdir())


def strict_json(text: str) -> dict:
    """The JSON in ``text``; NaN and Infinity, which are not JSON, fail the test."""

    def refuse(constant: str) -> None:
        raise AssertionError(f"{constant} is not JSON")

    return json.loads(text, parse_constant=refuse)
