"""``sentsim report``: regenerate report.html / report.md of a run folder (parse → write_report → print)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from sentsim.cli import common
from sentsim.cli.common import EXIT_OK


def add_parser(commands: Any) -> None:
    report = common.add_command(commands, "report", help="regenerate report.html / report.md of a run folder",
                                description="Rebuilds the reports of a finished run from its config.json, "
                                            "metrics.jsonl and summary.json.")
    report.add_argument("run_dir", type=Path, help="run folder written by `sentsim train` (holds summary.json)")


def run(args: argparse.Namespace) -> int:
    from sentsim.reporting import write_report

    html, markdown = write_report(args.run_dir)
    print(f"wrote {html} and {markdown}")
    return EXIT_OK
