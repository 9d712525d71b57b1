"""``sentsim dedup``: near-duplicate pairs within a corpus (paraphrase mining), as JSONL."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from sentsim.cli import common
from sentsim.cli.common import EXIT_OK


def add_parser(commands: Any) -> None:
    dedup = common.add_command(commands, "dedup", help="near-duplicate pairs within a corpus, as JSONL",
                               description="Finds the corpus pairs whose cosine is at least --threshold "
                                           "(each entry's top-k neighbours) and writes them best first.")
    dedup.add_argument("model", help="model folder or name")
    dedup.add_argument("corpus", type=Path,
                       help="a text file (one entry per line) or the .npy / .jsonl embeddings of `sentsim encode`")
    dedup.add_argument("--corpus-text", type=Path, help="the text file an embeddings corpus was encoded from")
    dedup.add_argument("--output", "-o", type=Path, required=True, help="output .jsonl")
    dedup.add_argument("--threshold", type=float, default=0.9, help="minimum cosine (default: 0.9)")
    dedup.add_argument("--top-k", type=int, default=10, help="neighbours looked at per entry (default: 10)")
    dedup.add_argument("--force", action="store_true", help="overwrite an existing output file")
    dedup.add_argument("--allow-blank", action="store_true",
                       help="read blank lines as empty texts (as `sentsim encode --allow-blank` does) instead of "
                            "refusing them")
    common.add_runtime_options(dedup)
    common.add_backend_option(dedup)


def run(args: argparse.Namespace) -> int:
    from sentsim.inference.search_files import dedup_file

    device = common.device(args)
    model = common.load_model(args.model, device=device, allow_pickle=args.allow_pickle,
                               backend=args.backend, dtype=args.dtype)
    common.warn_emulated_bf16(args.dtype, device)
    rows = dedup_file(model, args.corpus, args.output, threshold=args.threshold, top_k=args.top_k,
                      corpus_text=args.corpus_text, force=args.force, batch_size=args.batch_size, dtype=args.dtype,
                      allow_blank=args.allow_blank)
    print(f"wrote {rows} pairs with cosine ≥ {args.threshold} to {args.output}")
    return EXIT_OK
