"""``sentsim compare``: is model A better than model B on the same pairs? (parse → compare_models → print)."""

from __future__ import annotations

import argparse
from typing import Any

from sentsim.cli import common
from sentsim.cli.common import EXIT_OK


def add_parser(commands: Any) -> None:
    compare = common.add_command(
        commands, "compare", help="paired bootstrap: is model A better than model B?",
        description="Both models score the same pairs; resampling those pairs gives the difference A − B in "
                    "Spearman with a 95% interval and a two-sided p-value.")
    compare.add_argument("model_a", help="model A: folder or name (the difference is A − B)")
    compare.add_argument("model_b", help="model B: folder or name")
    common.add_data_options(compare, split_default="test")
    common.add_runtime_options(compare)
    common.add_backend_option(compare)
    compare.add_argument("--bootstrap", type=int, default=1000, help="paired resamples")
    compare.add_argument("--seed", type=common.seed_value, default=0, help="seed of the bootstrap")
    compare.add_argument("--json", action="store_true", help="print one JSON object")


def run(args: argparse.Namespace) -> int:
    from sentsim.evaluation.compare import compare_models

    device = common.device(args)
    dataset = common.load_data(args)
    common.warn_emulated_bf16(args.dtype, device)
    result = compare_models(args.model_a, args.model_b, dataset, batch_size=args.batch_size, dtype=args.dtype,
                            device=device, bootstrap=args.bootstrap, seed=args.seed,
                            show_progress=common.show_progress(args),
                            load_model=lambda name: common.load_model(name, device=device,
                                                                         allow_pickle=args.allow_pickle,
                                                                         backend=args.backend, dtype=args.dtype))
    if args.json:
        common.print_json(result.to_dict())
        return EXIT_OK
    print(f"A: {result.model_a}  Spearman(cosine) {result.spearman_a:.2f}")
    print(f"B: {result.model_b}  Spearman(cosine) {result.spearman_b:.2f}")
    print(f"A − B = {result.difference:+.2f}  95% CI [{result.ci_low:+.2f}, {result.ci_high:+.2f}]  "
          f"p = {result.p_value:.3g}  ({result.n_pairs} pairs of {result.data}, "
          f"{result.n_resamples} paired resamples)")
    return EXIT_OK
