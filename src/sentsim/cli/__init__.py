"""The ``sentsim`` command: a thin shell over the library, one module per command (parse → call → print).

Exit codes: 0 ok, 2 usage or bad input (one-line reason on stderr), 1 internal error (a bug).
Nothing here imports torch until a command runs, so ``sentsim --help`` stays fast.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import signal
import sys
import threading
import warnings
from collections.abc import Iterator, Sequence

from sentsim.cli.common import EXIT_INTERNAL, EXIT_OK, EXIT_USAGE, UsageError
from sentsim.cli.parser import COMMANDS, build_parser
from sentsim.errors import SentsimError, SentsimWarning, missing_dependency

__all__ = ["EXIT_INTERNAL", "EXIT_OK", "EXIT_USAGE", "UsageError", "build_parser", "main"]

#: Commands with their own SIGTERM handling: train saves a checkpoint, serve drains its requests.
OWN_SIGNAL_HANDLING = frozenset({"train", "serve"})


class Terminated(BaseException):
    """SIGTERM arrived. A BaseException, like KeyboardInterrupt, so no ``except Exception`` swallows it."""


@contextlib.contextmanager
def _sigterm_raises(enabled: bool) -> Iterator[None]:
    """SIGTERM raises :class:`Terminated` while a command runs, so the atomic writers' cleanup runs.

    Why: by default SIGTERM ends the process on the spot, and ``sentsim encode`` stopped that way
    left its hidden ``.OUT.npy.tmp-*`` file behind. Raising instead unwinds every ``with`` block (the
    temporary is removed, the output never appears) and the command exits 143 like a killed one.
    """
    if not enabled or threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.getsignal(signal.SIGTERM)

    def _raise(_signum: int, _frame: object) -> None:
        raise Terminated()

    signal.signal(signal.SIGTERM, _raise)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def _warnings_in_one_line() -> Iterator[None]:
    """sentsim's own warnings print as one ``warning: ...`` line, like the CLI's other notes; others as Python's.

    Why: Python's format adds the library file, line number and source line, which say nothing to a
    user about the input they gave. Restored on exit, so an in-process caller keeps its own hook.
    """
    with warnings.catch_warnings():
        shown = warnings.showwarning

        def show(message: Warning | str, category: type[Warning], filename: str, lineno: int,
                 file: object = None, line: str | None = None) -> None:
            if issubclass(category, SentsimWarning):
                print(f"warning: {message}", file=sys.stderr)
            else:
                shown(message, category, filename, lineno, file, line)  # type: ignore[arg-type]

        warnings.showwarning = show
        yield


#: Errors about a path the user chose (exit 2), and about the machine's storage (exit 1), shown in one line.
_USER_PATH_ERRNOS = frozenset({errno.EACCES, errno.EPERM, errno.EROFS, errno.EISDIR, errno.ENOTDIR, errno.ELOOP,
                               errno.ENAMETOOLONG})
_PATH_ERRNOS = _USER_PATH_ERRNOS | {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    parser = build_parser()
    try:
        argv = list(sys.argv[1:] if argv is None else argv)
        args = parser.parse_args(argv)
        args.argv = argv  # what train records as the command; sys.argv is the host's when called in-process
        with _sigterm_raises(args.command not in OWN_SIGNAL_HANDLING), _warnings_in_one_line():
            return COMMANDS[args.command](args)
    except Terminated:
        print("terminated", file=sys.stderr)
        return 143
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
    except OSError as error:
        # A path the user gave that cannot be written (permissions, a full disk, a read-only file system):
        # one line, not a traceback. The writes are atomic, so nothing half-written is left behind.
        if error.errno not in _PATH_ERRNOS:
            raise
        where = f"{error.filename}: " if error.filename else ""
        print(f"error: {where}{error.strerror or error}", file=sys.stderr)
        return EXIT_USAGE if error.errno in _USER_PATH_ERRNOS else EXIT_INTERNAL
    except RuntimeError as error:
        if not str(error).startswith("Symlink loop"):  # pathlib's resolve() on a cycle of links
            raise
        print(f"error: {error}: a path given loops through symbolic links", file=sys.stderr)
        return EXIT_USAGE
