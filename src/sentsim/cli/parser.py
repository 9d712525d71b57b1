"""The ``sentsim`` argument parser: one sub-command per module of this package."""

from __future__ import annotations

import argparse
from collections.abc import Callable

from sentsim.cli import (
    calibrate,
    clean,
    common,
    compare,
    dedup,
    encode,
    evaluate,
    export,
    report,
    search,
    serve,
    similarity,
    train,
)

#: Command name → its module (each has ``add_parser(commands)`` and ``run(args) -> exit code``).
COMMAND_MODULES = {"train": train, "evaluate": evaluate, "similarity": similarity, "encode": encode,
                   "calibrate": calibrate, "compare": compare, "report": report, "clean": clean, "serve": serve,
                   "export": export, "search": search, "dedup": dedup}
COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    name: module.run for name, module in COMMAND_MODULES.items()}


def build_parser() -> argparse.ArgumentParser:
    parser = common.Parser(prog="sentsim", formatter_class=common.HelpFormatter,
                           description="Train, evaluate and use sentence-embedding models for semantic "
                                       "textual similarity.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {common.version()}")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=common.Parser, metavar="COMMAND")
    for module in COMMAND_MODULES.values():
        module.add_parser(commands)
    return parser
