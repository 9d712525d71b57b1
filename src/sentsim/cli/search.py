"""``sentsim search``: the top-k corpus hits of every line of a query file, as JSONL."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from sentsim.cli import common
from sentsim.cli.common import EXIT_OK


def add_parser(commands: Any) -> None:
    search = common.add_command(commands, "search", help="top-k corpus hits per query line, as JSONL",
                                description="Encodes each line of QUERIES and writes its top-k most similar "
                                            "corpus entries (cosine) as one JSONL line, atomically.")
    search.add_argument("model", help="model folder or name")
    search.add_argument("queries", type=Path, help="UTF-8 text file, one query per line")
    search.add_argument("corpus", type=Path, help="corpus: a text file (one entry per line), or the .npy / .jsonl "
                                                  "embeddings written by `sentsim encode`")
    search.add_argument("--corpus-text", type=Path, help="the text file an embeddings corpus was encoded from")
    search.add_argument("--output", "-o", type=Path, required=True, help="output .jsonl")
    search.add_argument("--top-k", type=int, default=10, help="hits per query (default: 10)")
    search.add_argument("--force", action="store_true", help="overwrite an existing output file")
    search.add_argument("--allow-blank", action="store_true",
                       help="read blank lines as empty texts (as `sentsim encode --allow-blank` does) instead of "
                            "refusing them")
    common.add_runtime_options(search)
    common.add_backend_option(search)


def run(args: argparse.Namespace) -> int:
    from sentsim.inference.search_files import search_file

    device = common.device(args)
    model = common.load_model(args.model, device=device, allow_pickle=args.allow_pickle,
                               backend=args.backend, dtype=args.dtype)
    common.warn_emulated_bf16(args.dtype, device)
    rows = search_file(model, args.queries, args.corpus, args.output, top_k=args.top_k,
                       corpus_text=args.corpus_text, force=args.force, batch_size=args.batch_size, dtype=args.dtype,
                       allow_blank=args.allow_blank)
    print(f"wrote the top {args.top_k} hits of {rows} queries to {args.output}")
    return EXIT_OK
