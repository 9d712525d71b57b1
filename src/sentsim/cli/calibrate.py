"""``sentsim calibrate``: fit and save a model's cosine → 0–5 map (parse → calibrate_model → print)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from sentsim.cli import common
from sentsim.cli.common import EXIT_OK, UsageError
from sentsim.persistence.outputs import check_model_output


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
                           help="replace MODEL's calibration.json, or write the model into an existing OUTPUT model "
                                "folder (its model files replaced, anything else kept); default: refuse both")


def run(args: argparse.Namespace) -> int:
    from sentsim.evaluation.calibrate import calibrate_model
    from sentsim.inference.calibration import CALIBRATION_FILE

    if args.output is None and not Path(args.model).is_dir():
        raise UsageError(f"{args.model} is not a folder; pass --output FOLDER for the calibrated copy")
    source = Path(args.model).resolve() if Path(args.model).is_dir() else None
    in_place = args.output is None or args.output.resolve() == source
    if in_place and (Path(args.model) / CALIBRATION_FILE).exists() and not args.overwrite:
        raise UsageError(f"{Path(args.model) / CALIBRATION_FILE} already exists (a training run fits one on dev); "
                         "pass --overwrite to replace it, or --output FOLDER for a calibrated copy")
    if not in_place:
        if source is not None and source in args.output.resolve().parents:
            raise UsageError(f"{args.output} is inside the model folder {args.model}; save the copy elsewhere")
        check_model_output(args.output, overwrite=args.overwrite, inputs=[args.model, args.data])
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
