"""``sentsim similarity``: score two texts, or every pair of a file (parse → scoring → print or write)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from sentsim.cli import common
from sentsim.cli.common import EXIT_OK, UsageError


def add_parser(commands: Any) -> None:
    similarity = common.add_command(
        commands, "similarity", help="score two texts, or every pair of a file",
        description="Prints the calibrated 0–5 score when the model has a calibration, and the cosine "
                    "similarity always. With --output, writes the rows (sentence1, sentence2, cosine, "
                    "score_0_5) to a .csv or .jsonl file instead, for two texts as for --pairs.")
    similarity.add_argument("model", help="model folder or name")
    similarity.add_argument("texts", nargs="*", metavar="TEXT", help="two texts to compare (default: none, "
                                                                     "then --pairs is needed)")
    similarity.add_argument("--pairs", metavar="FILE", help="score every pair of this file (csv/tsv/txt/jsonl with "
                                                            "sentence1, sentence2; score optional; default: none)")
    similarity.add_argument("--output", "-o", type=Path,
                            help="write the scored rows here (.csv or .jsonl, atomically; default: stdout — a "
                                 "line for two texts, CSV for --pairs); never the --pairs file, a folder or a "
                                 "missing folder; an existing file only with --force")
    similarity.add_argument("--force", action="store_true", help="replace an existing --output file "
                                                                 "(default: refuse)")
    common.add_runtime_options(similarity)
    common.add_backend_option(similarity)


def run(args: argparse.Namespace) -> int:
    from sentsim.inference.scoring import score_pair_file, score_pairs
    from sentsim.inference.text_checks import check_not_empty, truncation_warning
    from sentsim.persistence.outputs import check_output_path

    if args.pairs is None and len(args.texts) != 2:
        raise UsageError("similarity takes two texts, or --pairs FILE")
    if args.pairs is not None and args.texts:
        raise UsageError("give either two texts or --pairs FILE, not both")
    if args.pairs is None:
        check_not_empty(args.texts)
    if args.output is not None:
        check_output_path(args.output, force=args.force, inputs=[args.pairs] if args.pairs else [],
                          example_name="scores.csv")
    device = common.device(args)
    model = common.load_model(args.model, device=device, allow_pickle=args.allow_pickle, backend=args.backend)
    common.warn_emulated_bf16(args.dtype, device)
    warning = truncation_warning(model, args.texts) if args.pairs is None else None
    if warning is not None:
        print(warning, file=sys.stderr)
    options = {"output": args.output, "batch_size": args.batch_size, "dtype": args.dtype, "quiet": args.quiet}
    if args.pairs is not None:
        score_pair_file(model, Path(args.pairs), **options)
    elif args.output is not None:
        score_pairs(model, _text_pair(args.texts), **options)
    else:
        _print_one(model, args)
    return EXIT_OK


def _text_pair(texts: list[str]) -> list[Any]:
    from sentsim.data import TextPair

    return [TextPair(texts[0], texts[1])]


def _print_one(model: Any, args: argparse.Namespace) -> None:
    from sentsim.inference.scoring import pair_scores

    cosines, scores = pair_scores(model, _text_pair(args.texts), batch_size=args.batch_size, dtype=args.dtype,
                                  quiet=True)
    cosine = float(cosines[0])
    if scores is not None:
        print(f"{float(scores[0]):.1f} / 5  (cosine {cosine:.3f})")
    else:
        print(f"cosine {cosine:.3f}  (no 0–5 calibration: run `sentsim calibrate` to add one)")
