"""``sentsim train``'s checkpoint options and ``--resume RUN``: the saved options back, conflicts refused."""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path
from typing import Any

from sentsim.cli.common import UsageError

#: Options that may differ on --resume: they change how the run is shown or saved, not what it computes.
FREE_ON_RESUME = frozenset({"resume", "quiet", "json", "save_steps", "save_total_limit", "argv", "command",
                            "split_default", "overwrite"})


def add_checkpoint_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("checkpoints and resume")
    group.add_argument("--save-steps", type=int, default=None, metavar="N",
                       help="save a resumable checkpoint every N steps and after each dev evaluation, in "
                            "OUTPUT.partial/ (default: none; SIGINT/SIGTERM still save one where the run stops)")
    group.add_argument("--save-total-limit", type=int, default=2, metavar="K", help="keep the newest K checkpoints")
    group.add_argument("--resume", type=Path, default=None, metavar="RUN",
                       help="continue the unfinished run whose --output was RUN from its latest checkpoint, with "
                            "its saved options (others given must agree; default: start a new run); for a --seeds "
                            "run: keep the finished seeds, train the others")


def resume_setup(args: argparse.Namespace) -> tuple[Any, Any]:
    """The saved run options and training config of ``--resume RUN``; a conflicting option is a usage error."""
    from sentsim.training.resume import read_resume

    record = read_resume(args.resume)
    changes: dict[str, Any] = {}
    if args.save_steps is not None:
        changes["save_steps"] = args.save_steps
    if args.save_total_limit != 2:
        changes["save_total_limit"] = args.save_total_limit
    return _restored(args, record, **changes)


def is_seeds_run(output: Path) -> bool:
    """Whether ``output`` is a ``--seeds`` run folder (finished or not) rather than a single run."""
    from sentsim.training.seeds import SEEDS_FILE, SEEDS_PLAN

    return (Path(output) / SEEDS_PLAN).is_file() or (Path(output) / SEEDS_FILE).is_file()


def resume_seeds_setup(args: argparse.Namespace) -> tuple[Any, Any, list[int]]:
    """The saved options, config and seeds of the unfinished ``--seeds`` run ``--resume RUN`` names."""
    from sentsim.training.seeds import read_seeds_plan

    record = read_seeds_plan(args.resume)
    options, config = _restored(args, record)
    return options, config, list(record["seeds"])


def _restored(args: argparse.Namespace, record: dict[str, Any], **changes: Any) -> tuple[Any, Any]:
    """The run options and config a saved record holds, once no option given now conflicts with them."""
    from sentsim.training.config import TrainConfig
    from sentsim.training.options import RunOptions

    _refuse_conflicts(args, record)
    saved = dict(record["options"])
    saved.update(output=Path(args.resume), resume=True, quiet=True if args.quiet or args.json else None, **changes)
    try:
        return RunOptions(**saved), TrainConfig(**record["config"])
    except TypeError as error:  # a record of another sentsim version
        raise UsageError(f"{args.resume}: the saved options do not fit this sentsim ({error})") from error


def _refuse_conflicts(args: argparse.Namespace, record: dict[str, Any]) -> None:
    """Every option given now that is not its default must equal the saved run's (or is free to differ)."""
    from sentsim.cli.parser import build_parser

    parser = build_parser()
    defaults = parser.parse_args(["train"])
    command = shlex.split(str(record["options"].get("command") or ""))
    saved = parser.parse_args(command[1:]) if command[1:2] == ["train"] else defaults
    saved.output = args.resume
    conflicts = []
    for name, value in sorted(vars(args).items()):
        if name in FREE_ON_RESUME or not hasattr(defaults, name) or value == getattr(defaults, name):
            continue
        if name == "output" and Path(value) == Path(args.resume):
            continue
        if value != getattr(saved, name, None):
            conflicts.append(f"--{name.replace('_', '-')} {value} (saved run: {getattr(saved, name, None)})")
    if conflicts:
        raise UsageError(f"--resume continues {args.resume} with its saved options; these differ: "
                         + "; ".join(conflicts))


def name_earlier_checkpoint(stop: BaseException, output: Path) -> None:
    """A signal outside the loop (final evaluation, say) saves nothing, but an earlier checkpoint may resume."""
    from sentsim.training.resume import latest_checkpoint, partial_folder, resume_command
    from sentsim.training.signals import TrainingInterrupted

    checkpoint = latest_checkpoint(partial_folder(output))
    if checkpoint is not None and not isinstance(stop, TrainingInterrupted):
        print(f"an earlier checkpoint can be resumed ({checkpoint}): {resume_command(output, 1)}", file=sys.stderr)
