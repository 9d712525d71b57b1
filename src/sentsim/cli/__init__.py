"""The ``sentsim`` command: a thin shell over the library, one module per command (parse → call → print).

Exit codes: 0 ok, 2 usage or bad input (one-line reason on stderr), 1 internal error (a bug).
Nothing here imports torch until a command runs, so ``sentsim --help`` stays fast.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Sequence

from sentsim.cli.common import EXIT_INTERNAL, EXIT_OK, EXIT_USAGE, UsageError
from sentsim.cli.parser import COMMANDS, build_parser
from sentsim.errors import SentsimError, missing_dependency

__all__ = ["EXIT_INTERNAL", "EXIT_OK", "EXIT_USAGE", "UsageError", "build_parser", "main"]


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    parser = build_parser()
    try:
        argv = list(sys.argv[1:] if argv is None else argv)
        args = parser.parse_args(argv)
        args.argv = argv  # what train records as the command; sys.argv is the host's when called in-process
        return COMMANDS[args.command](args)
    except SentsimError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except ImportError as error:  # an optional dependency this install lacks (torch in a sentsim[onnx] venv)
        missing = missing_dependency(error)
        if missing is None:
            raise
        print(f"error: {missing}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
