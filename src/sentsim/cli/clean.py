"""``sentsim clean FOLDER``: removes temporary folders that killed sentsim processes left (asks first)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from sentsim.cli import common
from sentsim.cli.common import EXIT_OK, UsageError


def add_parser(commands: Any) -> None:
    clean = common.add_command(
        commands, "clean", help="remove temporary folders left by interrupted (killed) sentsim runs",
        description="Lists the hidden .NAME.tmp-* folders in FOLDER whose owner process no longer runs (a "
                    "SIGKILL, the OOM killer or a power cut left them) and removes them after asking. Folders "
                    "that a live process is building, or that sentsim did not mark as its own, are never touched.")
    clean.add_argument("folder", type=Path, help="the folder that holds the leftovers (the parent of a run or model)")
    clean.add_argument("--yes", "-y", action="store_true", help="remove without asking (default: ask)")


def run(args: argparse.Namespace) -> int:
    from sentsim.persistence.temporaries import find_stale_temporaries, remove_stale_temporaries

    if not args.folder.is_dir():
        raise UsageError(f"{args.folder}: no such folder")
    stale = find_stale_temporaries(args.folder)
    if not stale:
        print(f"{args.folder}: no leftover temporary folders of dead sentsim processes")
        return EXIT_OK
    for path in stale:
        print(f"  {path}")
    if not args.yes:
        if not sys.stdin.isatty():
            raise UsageError(f"found {len(stale)} leftover folder(s); pass --yes to remove them without a prompt")
        answer = input(f"remove these {len(stale)} folder(s)? [y/N] ").strip().lower()
        if answer not in {"y", "yes"}:
            print("nothing removed")
            return EXIT_OK
    removed = remove_stale_temporaries(args.folder)
    print(f"removed {len(removed)} folder(s)")
    return EXIT_OK
