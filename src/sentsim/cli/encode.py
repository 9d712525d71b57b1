"""``sentsim encode``: the lines of a text file → ``.npy`` or JSONL rows (parse → scan → encode_lines → print)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from sentsim.cli import common
from sentsim.cli.common import EXIT_OK, UsageError


def add_parser(commands: Any) -> None:
    encode = common.add_command(
        commands, "encode", help="embed the lines of a text file into a .npy matrix or JSONL",
        description="Embeds every line of a UTF-8 text file (split at \\n only; one row per line, in order) "
                    "in chunks, in bounded memory, and writes a float32 .npy matrix or JSONL "
                    "({\"id\": line number, \"embedding\": [...]}) atomically. Checked before the model runs: "
                    "blank lines are refused with their line numbers unless --allow-blank; the output may not "
                    "be the input, a folder, or in a missing folder, nor an existing file unless --force.")
    encode.add_argument("model", help="model folder or name")
    encode.add_argument("file", type=Path, help="UTF-8 text file, one sentence per line")
    encode.add_argument("--output", "-o", type=Path,
                        help="output .npy or .jsonl, chosen by the suffix (default: FILE with the .npy suffix, "
                             "or NAME.embeddings.npy when FILE itself ends in .npy)")
    encode.add_argument("--force", action="store_true", help="replace an existing output file (default: refuse)")
    encode.add_argument("--allow-blank", action="store_true",
                        help="encode blank or whitespace-only lines as empty text, keeping one row per line "
                             "(default: refuse the file and name the blank lines)")
    encode.add_argument("--chunk-lines", type=int, default=10_000,
                        help="lines read and encoded at a time; memory grows with this, not with the file "
                             "(default: 10000)")
    encode.add_argument("--normalize", action="store_true", help="L2-normalise the embeddings (default: off)")
    common.add_runtime_options(encode)
    common.add_backend_option(encode)
    common.add_truncate_option(encode)


def run(args: argparse.Namespace) -> int:
    from sentsim.inference.encode_stream import default_output, encode_lines, output_format, scan_lines
    from sentsim.persistence.outputs import check_output_path

    if args.chunk_lines < 1:
        raise UsageError(f"--chunk-lines must be at least 1, got {args.chunk_lines}")
    output = args.output if args.output is not None else default_output(args.file)
    check_output_path(output, force=args.force, inputs=[args.file])
    output_format(output)
    scan = scan_lines(args.file, allow_blank=args.allow_blank)
    device = common.device(args)
    model = common.load_model(args.model, device=device, allow_pickle=args.allow_pickle,
                               backend=args.backend, dtype=args.dtype, truncate_dim=args.truncate_dim)
    common.warn_emulated_bf16(args.dtype, device)
    result = encode_lines(model, scan, output, chunk_lines=args.chunk_lines, batch_size=args.batch_size,
                          normalize=args.normalize, dtype=args.dtype, quiet=True if args.quiet else None)
    blank = f" ({scan.blank_count} blank line(s) encoded as empty text)" if scan.blank_count else ""
    print(f"wrote {result.rows} × {result.dimension} embeddings to {result.output}{blank}")
    return EXIT_OK
