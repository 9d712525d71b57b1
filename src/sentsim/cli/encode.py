"""``sentsim encode``: the lines of a text file → a ``.npy`` matrix (parse → encode_to_npy → print)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from sentsim.cli import common
from sentsim.cli.common import EXIT_OK


def add_parser(commands: Any) -> None:
    encode = common.add_command(commands, "encode", help="embed the lines of a text file into a .npy matrix",
                                description="Embeds every non-blank line of a UTF-8 text file and writes the "
                                            "float32 matrix (one row per line) as .npy, atomically.")
    encode.add_argument("model", help="model folder or name")
    encode.add_argument("file", type=Path, help="UTF-8 text file, one sentence per line")
    encode.add_argument("--output", "-o", type=Path, help="output .npy (default: FILE with .npy suffix)")
    encode.add_argument("--normalize", action="store_true", help="L2-normalise the embeddings (default: off)")
    common.add_runtime_options(encode)
    common.add_backend_option(encode)


def run(args: argparse.Namespace) -> int:
    from sentsim.inference.encode_files import default_output, encode_to_npy, read_sentence_file

    device = common.device(args)
    sentences = read_sentence_file(args.file)
    model = common.load_model(args.model, device=device, allow_pickle=args.allow_pickle, backend=args.backend)
    common.warn_emulated_bf16(args.dtype, device)
    result = encode_to_npy(model, sentences, args.output or default_output(args.file), batch_size=args.batch_size,
                           normalize=args.normalize, dtype=args.dtype, show_progress=common.show_progress(args))
    print(f"wrote {result.rows} × {result.dimension} embeddings to {result.output}")
    return EXIT_OK
