"""``sentsim export``: a model folder → the same folder plus ``onnx/`` files (parse → export_model → print)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from sentsim.cli import common
from sentsim.cli.common import EXIT_OK


def add_parser(commands: Any) -> None:
    export = common.add_command(
        commands, "export", help="write an ONNX copy of a model (fp32, optionally int8) for --backend onnx",
        description="Copies the model folder (sentence-transformers layout, calibration included) to OUTPUT and "
                    "adds onnx/model.onnx, which `--backend onnx` and sentence-transformers' backend=\"onnx\" run; "
                    "with --quantize int8 also dynamic int8 files per instruction set, the one matching the CPU "
                    "being picked at load time. The folder is built aside and renamed in when complete.")
    export.add_argument("model", help="model folder or name (e.g. all-MiniLM-L6-v2)")
    export.add_argument("--output", "-o", type=Path, required=True, help="the new model folder")
    export.add_argument("--quantize", choices=("none", "int8"), default="none",
                        help="int8: also write dynamic int8 files (model_qint8_<isa>.onnx) of the fused graph")
    export.add_argument("--optimize", action="store_true",
                        help="also keep ONNX Runtime's fused fp32 graph (onnx/model_opt.onnx); default: not kept")
    export.add_argument("--overwrite", action="store_true",
                        help="replace OUTPUT if it exists (default: an existing OUTPUT is an error)")


def run(args: argparse.Namespace) -> int:
    import json

    from sentsim.export.onnx_export import MANIFEST_FILE, ONNX_FOLDER, export_model

    target = export_model(args.model, args.output, quantize=args.quantize, optimize=args.optimize,
                          overwrite=args.overwrite)
    manifest = json.loads((target / ONNX_FOLDER / MANIFEST_FILE).read_text(encoding="utf-8"))
    files = ", ".join(manifest["variants"])
    print(f"exported {args.model} to {target} ({files}); run it with --backend onnx")
    return EXIT_OK
