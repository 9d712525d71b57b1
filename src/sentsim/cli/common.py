"""What every command shares: the parser class, exit codes, shared options, loading, warnings and printing.

Nothing here imports torch at module level: ``sentsim --help`` must stay fast and torch-free.
"""

from __future__ import annotations

import argparse
import json
import math
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sentsim.environment import DEVICE_CHOICES, onnx_isa
from sentsim.errors import SentsimError

EXIT_OK, EXIT_INTERNAL, EXIT_USAGE = 0, 1, 2
PRECISIONS = ("auto", "fp32", "bf16")
#: The CPUs (``environment.onnx_isa``) where the int8 file was measured faster than torch: VNNI, and AVX2 under
#: the CPUID cap. AVX-512 without VNNI (it runs the AVX2 file) and arm64 are unmeasured.
INT8_MEASURED_ISAS = frozenset({"avx512_vnni", "avx2"})


class UsageError(SentsimError):
    """Raised by the argument parser instead of printing usage and exiting by itself."""


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # argparse would sys.exit(2) with a usage dump
        raise UsageError(f"{self.prog}: {message}")


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows "(default: X)" for every option whose help does not already say its default.

    Flags (default False) and options without a value (default None) must say in words what
    happens when they are left out; a test checks that every option's help names a default.
    """

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        if "default" in text.lower() or any(action.default is value for value in (None, False, argparse.SUPPRESS)):
            return text
        return super()._get_help_string(action)


def seed_value(text: str) -> int:
    """An argparse type for seeds: a whole number numpy and torch both take (0 to 2**32 - 1)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"a seed is a whole number, not {text!r}") from None
    if not 0 <= value < 2**32:
        raise argparse.ArgumentTypeError(f"a seed is between 0 and {2**32 - 1}, not {value}")
    return value


def finite_float(text: str) -> float:
    """An argparse type for a real number that is not nan or inf (they would train to NaN without a word)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, not {text}")
    return value


def positive_int(text: str) -> int:
    """An argparse type for a whole number of at least 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def add_truncate_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--truncate-dim", type=positive_int, default=None, metavar="N",
                        help="keep the first N dimensions of each embedding, as a Matryoshka-trained model is "
                             "used shortened (default: the model's own setting, else all)")


def truncate_model(model: Any, truncate_dim: int | None) -> None:
    """Sets ``--truncate-dim`` on a loaded model (either backend); above the model's dimension is a usage error."""
    if truncate_dim is None:
        return
    full = int(model.embedding_dimension)
    if truncate_dim > full:
        raise UsageError(f"--truncate-dim {truncate_dim} is above the model's embedding dimension, {full}")
    model.truncate_dim = truncate_dim


def add_command(commands: Any, name: str, **options: Any) -> argparse.ArgumentParser:
    return commands.add_parser(name, formatter_class=HelpFormatter, **options)


# -- shared options --------------------------------------------------------------------------------
def add_data_options(parser: argparse.ArgumentParser, *, split_default: str) -> None:
    group = parser.add_argument_group("data")
    group.add_argument("--data", metavar="PATH",
                       help="an STSb release folder (with sts-train/dev/test.csv), a SemEval STS 2012-2016 "
                            "folder (STS.input.NAME.txt with STS.gs.NAME.txt), or one pair file "
                            "(.csv, .tsv, .jsonl, .txt read as unquoted TSV as SICK ships it, each may be .gz; "
                            "or .parquet, as the Hugging Face Hub stores datasets; with sentence1, sentence2, "
                            "score columns), or a Hugging Face dataset: its downloaded folder or its id "
                            "(mteb/sickr-sts). Default: the STS benchmark from "
                            "$SENTSIM_STSB_DIR, the cache, or a download")
    group.add_argument("--split", choices=("train", "dev", "test"), default=None,
                       help=f"which split to use (dev is the Hub's validation); with an STSb folder or a "
                            f"Hugging Face dataset (folder or id), refused with a pair file "
                            f"(default: {split_default})")
    parser.set_defaults(split_default=split_default)
    add_column_options(group)


def add_column_options(group: argparse._ArgumentGroup) -> None:
    group.add_argument("--sentence1-column", default="sentence1", help="first-sentence column")
    group.add_argument("--sentence2-column", default="sentence2", help="second-sentence column")
    group.add_argument("--score-column", default="score", help="gold-score column")
    group.add_argument("--score-range", nargs=2, type=float, default=(0.0, 5.0), metavar=("LOW", "HIGH"),
                       help="declared range of the scores in pair files, normalised to 0–1 (default: 0 5)")
    group.add_argument("--skip-bad-rows", action="store_true",
                       help="skip malformed rows (and report how many and which lines) instead of stopping")


def add_device_option(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    parser.add_argument("--device", choices=DEVICE_CHOICES, default="auto",
                        help="where the model runs; auto = cuda if available, else cpu")


def add_allow_pickle_option(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    parser.add_argument("--allow-pickle", action="store_true",
                        help="load a model whose weights are only pickle files (pytorch_model.bin); refused by "
                             "default because unpickling can run code (still loaded with torch's weights_only)")


def add_backend_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--backend", choices=("auto", "torch", "onnx"), default="auto",
                        help="torch, or onnx (ONNX Runtime, no torch needed) for a folder from `sentsim export`; "
                             "auto = onnx for such a folder when onnxruntime is installed, else torch")


def add_runtime_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--batch-size", type=int, default=64, help="sentences per encoding batch")
    parser.add_argument("--dtype", "--precision", dest="dtype", choices=PRECISIONS, default="auto",
                        help="compute type (old name: --precision); auto = native bf16 if any, else fp32")
    add_device_option(parser)
    add_allow_pickle_option(parser)
    parser.add_argument("--quiet", action="store_true", help="no progress bars (they are off anyway when "
                                                             "stderr is not a terminal)")


def data_options(args: argparse.Namespace) -> dict[str, Any]:
    return {"sentence1_column": args.sentence1_column, "sentence2_column": args.sentence2_column,
            "score_column": args.score_column, "score_range": tuple(args.score_range)}


def show_progress(args: argparse.Namespace) -> bool | None:
    """None lets the library decide (bars on a terminal, for long inputs); --quiet turns them off."""
    return False if args.quiet else None


# -- loading -----------------------------------------------------------------------------------------
def device(args: argparse.Namespace) -> str:
    from sentsim.environment import resolve_device, torch_installed

    backend = getattr(args, "backend", "torch")
    if backend == "onnx" or (backend == "auto" and not torch_installed()):
        if args.device not in ("auto", "cpu"):
            raise UsageError(f"--device {args.device}: the onnx backend runs on the CPU; use --backend torch")
        return "cpu"  # without asking torch, which the onnx backend may not have

    return resolve_device(args.device)


def load_model(name: str, *, device: str, allow_pickle: bool = False, backend: str = "torch",
               dtype: str | None = None, truncate_dim: int | None = None):
    """The model on the chosen backend, named on stderr: the onnx file (``auto`` decides per folder), and
    for ``dtype="auto"`` the torch dtype it means here and why (passed by the commands that encode many
    texts; ``similarity`` stays quiet, and an explicit --dtype needs no explaining). ``truncate_dim``
    (``--truncate-dim``) is set, or refused, before anything is said about the backend."""
    from sentsim.inference.onnx_files import choose_backend

    if choose_backend(name, backend) == "onnx":
        from sentsim.inference.onnx_backend import OnnxSentenceEncoder

        encoder = OnnxSentenceEncoder(name)
        truncate_model(encoder, truncate_dim)
        print(f"backend: {encoder.describe()}", file=sys.stderr)
        return encoder
    from sentsim.encoders.bi_encoder import SentenceTransformer

    model = SentenceTransformer(name, device=device, allow_pickle=allow_pickle)  # says so if torch is missing
    truncate_model(model, truncate_dim)
    if dtype == "auto":
        import torch

        from sentsim.inference.forward import describe_torch_path

        where = torch.device(device)
        hint = ""
        if where.type == "cpu" and onnx_isa() in INT8_MEASURED_ISAS:
            hint = f"; int8 runs faster: `sentsim export {shlex.quote(name)} -o DIR --quantize int8`, then use DIR"
        print(f"backend: {describe_torch_path(dtype, where)}{hint}", file=sys.stderr)
    return model


def split(args: argparse.Namespace) -> str:
    """The STSb split to read; --split with a pair file (or a SemEval set) is refused rather than silently ignored."""
    from sentsim.data.semeval import is_semeval_source
    from sentsim.data.sources import is_single_set

    if args.split is not None and is_single_set(args.data):
        kind = "one set" if is_semeval_source(Path(args.data)) else "a pair file"
        raise UsageError(f"--split {args.split} applies only to an STSb folder; --data {args.data} is {kind}, "
                         "so all its pairs are used (leave --split out)")
    return args.split or args.split_default


def load_data(args: argparse.Namespace):
    from sentsim.data import load_pairs

    dataset = load_pairs(args.data, split=split(args), skip_bad_rows=args.skip_bad_rows, **data_options(args))
    if dataset.skipped:
        print(f"warning: {dataset.skipped_summary()}", file=sys.stderr)
    return dataset.require_scorable()


def warn_emulated_bf16(precision: str, device: str) -> None:
    """One stderr line when bf16 was asked for where the hardware only emulates it (slower than fp32)."""
    if precision != "bf16":
        return  # nothing to say, and no torch import (the onnx backend may run without torch)
    from sentsim.inference.forward import emulated_bf16_warning

    message = emulated_bf16_warning(precision, device)
    if message is not None:
        print(f"warning: {message}", file=sys.stderr)


# -- printing ----------------------------------------------------------------------------------------
def print_json(obj: Any) -> None:
    """One JSON object on stdout; NaN (a correlation of constant scores) becomes null, as JSON has no NaN."""
    def finite(value: Any) -> Any:
        if isinstance(value, float) and not math.isfinite(value):
            return None
        if isinstance(value, dict):
            return {key: finite(item) for key, item in value.items()}
        if isinstance(value, list | tuple):
            return [finite(item) for item in value]
        return value

    print(json.dumps(finite(obj), allow_nan=False))


def command_line(argv: Sequence[str]) -> str:
    return "sentsim " + " ".join(shlex.quote(arg) for arg in argv)


def version() -> str:
    from sentsim import __version__

    return __version__
