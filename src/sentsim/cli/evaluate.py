"""``sentsim evaluate``: correlations of a model's similarities with gold scores (parse → evaluate_pairs → print)."""

from __future__ import annotations

import argparse
from typing import Any

from sentsim.cli import common
from sentsim.cli.common import EXIT_OK

METRIC_ORDER = ("cosine", "dot", "euclidean", "manhattan")


def add_parser(commands: Any) -> None:
    evaluate = common.add_command(
        commands, "evaluate", help="correlations of a model's similarities with gold scores",
        description="Pearson and Spearman (×100) between gold scores and cosine, dot, euclidean and manhattan "
                    "similarity, with 95% bootstrap confidence intervals and per-genre Spearman; for gold scores "
                    "that take two values (0/1 paraphrase labels), also the best one-threshold classifier's "
                    "accuracy, F1, precision, recall, average precision and MCC.")
    evaluate.add_argument("model", help="model folder or name (e.g. all-MiniLM-L6-v2)")
    common.add_data_options(evaluate, split_default="test")
    common.add_runtime_options(evaluate)
    common.add_backend_option(evaluate)
    common.add_truncate_option(evaluate)
    evaluate.add_argument("--bootstrap", type=int, default=1000,
                          help="bootstrap resamples for the 95%% intervals (0 turns them off)")
    evaluate.add_argument("--seed", type=common.seed_value, default=0, help="seed of the bootstrap")
    evaluate.add_argument("--json", action="store_true", help="print one JSON object instead of a table")


def run(args: argparse.Namespace) -> int:
    from sentsim.evaluation.evaluate import evaluate_pairs

    device = common.device(args)
    dataset = common.load_data(args)
    model = common.load_model(args.model, device=device, allow_pickle=args.allow_pickle,
                               backend=args.backend, dtype=args.dtype, truncate_dim=args.truncate_dim)
    common.warn_emulated_bf16(args.dtype, device)
    result = evaluate_pairs(model, dataset, batch_size=args.batch_size, dtype=args.dtype,
                            bootstrap=args.bootstrap, seed=args.seed, show_progress=common.show_progress(args))
    if args.json:
        common.print_json({"model": args.model, "data": dataset.source,
                           "truncate_dim": getattr(model, "truncate_dim", None), **result.to_dict()})
        return EXIT_OK
    shortened = f", first {model.truncate_dim} dimensions" if getattr(model, "truncate_dim", None) else ""
    print(f"{args.model} on {dataset.source}: {len(dataset)} pairs{shortened}")
    print(f"{'similarity':<12}{'Pearson':>10}{'Spearman':>10}   Spearman 95% CI")
    for measure in METRIC_ORDER:
        interval = result.confidence_intervals.get(f"spearman_{measure}")
        ci = f"   [{interval[0]:.2f}, {interval[1]:.2f}]" if interval else ""
        print(f"{measure:<12}{result.metrics[f'pearson_{measure}']:>10.2f}"
              f"{result.metrics[f'spearman_{measure}']:>10.2f}{ci}")
    if result.per_genre:
        print("Spearman(cosine) by genre: " + ", ".join(f"{g} {v:.2f}" for g, v in result.per_genre.items()))
    if result.binary:
        _print_binary(result.binary, result.gold)
    return EXIT_OK


def _print_binary(binary: dict[str, dict[str, float]], gold: Any) -> None:
    """The one-threshold classifier table, for gold scores that are labels (two values)."""
    low, high = sorted(set(gold.tolist()))
    print(f"gold scores take two values ({low:g}, {high:g} = alike): as a classifier with one threshold "
          "(distances: at most the threshold is alike)")
    print(f"{'similarity':<12}{'accuracy':>10}{'threshold':>11}{'F1':>8}{'threshold':>11}{'precision':>11}"
          f"{'recall':>8}{'AP':>8}{'MCC':>8}")
    for measure in METRIC_ORDER:
        row = binary[measure]
        print(f"{measure:<12}{row['accuracy']:>10.2f}{row['accuracy_threshold']:>11.4f}{row['f1']:>8.2f}"
              f"{row['f1_threshold']:>11.4f}{row['precision']:>11.2f}{row['recall']:>8.2f}{row['ap']:>8.2f}"
              f"{row['mcc']:>8.2f}")
