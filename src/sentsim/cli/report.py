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
    from sentsim.training.output_folder import is_sentsim_run

    # report.md and report.html are written over: only in a folder `sentsim train` wrote, not in any
    # folder that happens to hold a summary.json.
    if args.run_dir.is_dir() and (args.run_dir / "summary.json").is_file() and not is_sentsim_run(args.run_dir):
        raise common.UsageError(f"{args.run_dir} is not a run folder written by `sentsim train` (no "
                                ".sentsim-run.json, nor its config.json and summary.json); its report files are "
                                "never written over")
    html, markdown = write_report(args.run_dir)
    print(f"wrote {html} and {markdown}")
    return EXIT_OK
