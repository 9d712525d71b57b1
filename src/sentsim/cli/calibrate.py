"""``sentsim calibrate``: fit and save a model's cosine → 0–5 map (parse → calibrate_model → print)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from sentsim.cli import common
from sentsim.cli.common import EXIT_OK, UsageError
from sentsim.persistence.outputs import check_folder_spares_inputs


def add_parser(commands: Any) -> None:
    calibrate = common.add_command(
        commands, "calibrate", help="fit the cosine → 0–5 map of a model on scored pairs",
        description="Fits a monotone (isotonic) map from cosine similarity to the 0–5 STS scale and saves it "
                    "in the model folder.")
    calibrate.add_argument("model", help="model folder (written in place) or name")
    common.add_data_options(calibrate, split_default="dev")
    common.add_runtime_options(calibrate)
    common.add_backend_option(calibrate)
    calibrate.add_argument("--output", "-o", type=Path,
                           help="save the calibrated model here instead of into MODEL (needed for names; "
                                "default: write calibration.json into MODEL)")
    calibrate.add_argument("--overwrite", action="store_true",
                           help="write the model into an existing OUTPUT: the model's files are replaced, anything "
                                "else there stays (default: an existing OUTPUT is an error)")


def run(args: argparse.Namespace) -> int:
    from sentsim.evaluation.calibrate import calibrate_model

    if args.output is None and not Path(args.model).is_dir():
        raise UsageError(f"{args.model} is not a folder; pass --output FOLDER for the calibrated copy")
    source = Path(args.model).resolve() if Path(args.model).is_dir() else None
    in_place = args.output is None or args.output.resolve() == source
    if not in_place:
        if source is not None and source in args.output.resolve().parents:
            raise UsageError(f"{args.output} is inside the model folder {args.model}; save the copy elsewhere")
        check_folder_spares_inputs(args.output, [args.model, args.data])
        if (args.output.exists() or args.output.is_symlink()) and not args.overwrite:
            raise UsageError(f"{args.output} already exists; pass --overwrite to write into it (calibrate writes a "
                             "whole model folder there)")
    device = common.device(args)
    dataset = common.load_data(args)
    model = common.load_model(args.model, device=device, allow_pickle=args.allow_pickle,
                               backend=args.backend, dtype=args.dtype)
    common.warn_emulated_bf16(args.dtype, device)
    fit = calibrate_model(model, dataset, target=Path(args.model) if in_place else args.output,
                          whole_model=not in_place, batch_size=args.batch_size, dtype=args.dtype,
                          show_progress=common.show_progress(args))
    print(f"calibrated on {fit.n_pairs} pairs of {fit.source}: MAE {fit.mae_cosine_x5:.3f} (5 × cosine) → "
          f"{fit.mae_calibrated:.3f} (calibrated, in-sample); saved to {fit.saved_to}")
    return EXIT_OK
