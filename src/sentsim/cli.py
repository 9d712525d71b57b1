"""The ``sentsim`` command: a thin shell over the library (parse options → call → print).

Exit codes: 0 ok, 2 usage or bad input (one-line reason on stderr), 1 internal error (a bug).
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import math
import os
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sentsim.errors import ConfigError, SentsimError
from sentsim.persistence.hub import DEFAULT_MODEL
from sentsim.training.recipes import RECIPES, recipe

#: Options a recipe sets unless the user gives them on the command line.
RECIPE_OPTIONS = ("loss", "batch_size", "learning_rate", "epochs", "warmup_ratio", "weight_decay",
                  "evaluation_steps", "patience", "average")

EXIT_OK, EXIT_INTERNAL, EXIT_USAGE = 0, 1, 2
METRIC_ORDER = ("cosine", "dot", "euclidean", "manhattan")


class UsageError(SentsimError):
    """Raised by the argument parser instead of printing usage and exiting by itself."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # argparse would sys.exit(2) with a usage dump
        raise UsageError(f"{self.prog}: {message}")


# -- shared option groups ------------------------------------------------------------------------
def _add_data_options(parser: argparse.ArgumentParser, *, split_default: str) -> None:
    group = parser.add_argument_group("data")
    group.add_argument("--data", metavar="PATH",
                       help="an STSb release folder (with sts-train/dev/test.csv) or one pair file "
                            "(.csv, .tsv, .jsonl with sentence1, sentence2, score columns). Default: the STS "
                            "benchmark from $SENTSIM_STSB_DIR, the cache, or a download")
    group.add_argument("--split", choices=("train", "dev", "test"), default=split_default,
                       help=f"which STSb split to use when --data is a folder (default: {split_default})")
    _add_column_options(group)


def _add_column_options(group: argparse._ArgumentGroup) -> None:
    group.add_argument("--sentence1-column", default="sentence1", help="first-sentence column (default: sentence1)")
    group.add_argument("--sentence2-column", default="sentence2", help="second-sentence column (default: sentence2)")
    group.add_argument("--score-column", default="score", help="gold-score column (default: score)")
    group.add_argument("--score-range", nargs=2, type=float, default=(0.0, 5.0), metavar=("LOW", "HIGH"),
                       help="declared range of the scores in pair files, normalised to 0–1 (default: 0 5)")
    group.add_argument("--skip-bad-rows", action="store_true",
                       help="skip malformed rows (and report how many and which lines) instead of stopping")


def _data_options(args: argparse.Namespace) -> dict[str, Any]:
    return {"sentence1_column": args.sentence1_column, "sentence2_column": args.sentence2_column,
            "score_column": args.score_column, "score_range": tuple(args.score_range)}


def _add_runtime_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--batch-size", type=int, default=64, help="sentences per encoding batch (default: 64)")
    parser.add_argument("--precision", choices=("auto", "fp32", "bf16"), default="auto",
                        help="auto = bf16 where the CPU/GPU has it natively, else fp32 (default: auto)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars (they are off anyway when "
                                                             "stderr is not a terminal)")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="sentsim", description="Train, evaluate and use sentence-embedding models for "
                                                 "semantic textual similarity.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser, metavar="COMMAND")

    train = commands.add_parser("train", help="fine-tune a model on scored pairs (default: STSb)",
                                description="Fine-tune a sentence-embedding model on scored sentence pairs, "
                                            "keep the best dev checkpoint, evaluate it on test, calibrate "
                                            "scores to 0–5 and write a run folder with model and report.")
    train.add_argument("--base-model", default=DEFAULT_MODEL,
                       help=f"model folder or hub name to start from (default: {DEFAULT_MODEL}, bundled)")
    train.add_argument("--pooling", default=None, metavar="MODE",
                       help="build from scratch: keep only the base transformer and add new pooling "
                            "(mean, cls, max, mean-sqrt-len, weighted-mean, last-token)")
    train.add_argument("--normalize", action="store_true", help="with --pooling: add an L2-normalize layer")
    train.add_argument("--data", metavar="PATH",
                       help="STSb release folder, or a training pair file (then --dev-data is needed). "
                            "Default: the STS benchmark from $SENTSIM_STSB_DIR, the cache, or a download")
    train.add_argument("--dev-data", metavar="FILE", help="dev pair file (picks the best checkpoint)")
    train.add_argument("--test-data", metavar="FILE", help="test pair file (evaluated once at the end)")
    train.add_argument("--no-test", action="store_true",
                       help="do not read the test split at all (for tuning runs that must not see test)")
    columns = train.add_argument_group("pair-file columns")
    _add_column_options(columns)
    train.add_argument("--output", "-o", type=Path, default=Path("runs/stsb"),
                       help="run folder to write (config, metrics, report, model/). Default: runs/stsb")
    hyper = train.add_argument_group("hyper-parameters (unset ones come from --recipe)")
    hyper.add_argument("--recipe", choices=sorted(RECIPES), default="default",
                       help="named hyper-parameter set: " + "; ".join(
                           f"{name} = {_describe_recipe(values)}" for name, values in RECIPES.items()))
    hyper.add_argument("--loss", default=None,
                       help="cosine (MSE of cosine vs score), cosent, angle, or a weighted sum such as "
                            "cosine+cosent or cosine+0.03*cosent")
    hyper.add_argument("--loss-scale", type=float, default=None, help="scale of cosent/angle (default: 20)")
    hyper.add_argument("--batch-size", type=int, default=None, help="pairs per step")
    hyper.add_argument("--lr", "--learning-rate", dest="learning_rate", type=float, default=None,
                       help="peak learning rate of AdamW")
    hyper.add_argument("--epochs", type=int, default=None, help="passes over the training data")
    hyper.add_argument("--warmup-ratio", type=float, default=None, help="share of steps for linear warmup")
    hyper.add_argument("--weight-decay", type=float, default=None, help="AdamW weight decay")
    hyper.add_argument("--max-grad-norm", type=float, default=1.0, help="gradient clipping (default: 1.0)")
    hyper.add_argument("--seed", type=int, default=42, help="random seed; same seed, same result (default: 42)")
    hyper.add_argument("--seeds", type=int, default=1,
                       help="train N times with seeds SEED, SEED+1, ... into OUTPUT/seed-<n>/ and report the "
                            "mean ± std of dev and test Spearman (default: 1)")
    hyper.add_argument("--average", type=int, default=None, metavar="N",
                       help="train N runs (seeds SEED … SEED+N-1) and average their weights (model soup); "
                            "with --seeds, each seed's runs are distinct")
    hyper.add_argument("--evaluation-steps", type=int, default=None,
                       help="also evaluate on dev every N steps (0: only after each epoch)")
    hyper.add_argument("--patience", type=int, default=None,
                       help="stop after N dev evaluations without improvement (early stopping)")
    hyper.add_argument("--max-seq-length", type=int, default=None, help="truncate inputs to N tokens")
    hyper.add_argument("--precision", choices=("auto", "fp32", "bf16"), default="auto",
                       help="auto = bf16 autocast where the hardware has native bf16, else fp32")
    hyper.add_argument("--no-length-grouping", action="store_true",
                       help="shuffle batches plainly instead of grouping pairs of similar length (slower)")
    train.add_argument("--quiet", action="store_true", help="no progress bars")
    train.add_argument("--json", action="store_true", help="print the final figures as one JSON object")

    evaluate = commands.add_parser("evaluate", help="correlations of a model's similarities with gold scores",
                                   description="Pearson and Spearman (×100) between gold scores and cosine, "
                                               "dot, euclidean and manhattan similarity, with 95% bootstrap "
                                               "confidence intervals and per-genre Spearman.")
    evaluate.add_argument("model", help="model folder or name (e.g. all-MiniLM-L6-v2)")
    _add_data_options(evaluate, split_default="test")
    _add_runtime_options(evaluate)
    evaluate.add_argument("--bootstrap", type=int, default=1000,
                          help="bootstrap resamples for the 95%% intervals (0 turns them off; default: 1000)")
    evaluate.add_argument("--seed", type=int, default=0, help="seed of the bootstrap (default: 0)")
    evaluate.add_argument("--json", action="store_true", help="print one JSON object instead of a table")

    similarity = commands.add_parser("similarity", help="score two texts, or every pair of a file",
                                     description="Prints the calibrated 0–5 score when the model has a "
                                                 "calibration, and the cosine similarity always.")
    similarity.add_argument("model", help="model folder or name")
    similarity.add_argument("texts", nargs="*", metavar="TEXT", help="two texts to compare")
    similarity.add_argument("--pairs", metavar="FILE", help="score every pair of this file (csv/tsv/jsonl "
                                                           "with sentence1, sentence2; score optional)")
    similarity.add_argument("--output", "-o", type=Path, help="where to write --pairs results (.csv or .jsonl; "
                                                             "default: stdout as CSV)")
    _add_runtime_options(similarity)

    encode = commands.add_parser("encode", help="embed the lines of a text file into a .npy matrix")
    encode.add_argument("model", help="model folder or name")
    encode.add_argument("file", type=Path, help="UTF-8 text file, one sentence per line")
    encode.add_argument("--output", "-o", type=Path, help="output .npy (default: FILE with .npy suffix)")
    encode.add_argument("--normalize", action="store_true", help="L2-normalise the embeddings")
    _add_runtime_options(encode)

    calibrate = commands.add_parser("calibrate", help="fit the cosine → 0–5 map of a model on scored pairs",
                                    description="Fits a monotone (isotonic) map from cosine similarity to "
                                                "the 0–5 STS scale and saves it in the model folder.")
    calibrate.add_argument("model", help="model folder (written in place) or name")
    _add_data_options(calibrate, split_default="dev")
    _add_runtime_options(calibrate)
    calibrate.add_argument("--output", "-o", type=Path,
                           help="save the calibrated model here instead of into MODEL (needed for names)")

    compare = commands.add_parser("compare", help="paired bootstrap: is model A better than model B?",
                                  description="Both models score the same pairs; resampling those pairs gives "
                                              "the difference A − B in Spearman with a 95% interval and a "
                                              "two-sided p-value.")
    compare.add_argument("model_a")
    compare.add_argument("model_b")
    _add_data_options(compare, split_default="test")
    _add_runtime_options(compare)
    compare.add_argument("--bootstrap", type=int, default=1000, help="resamples (default: 1000)")
    compare.add_argument("--seed", type=int, default=0, help="seed of the bootstrap (default: 0)")
    compare.add_argument("--json", action="store_true", help="print one JSON object")

    report = commands.add_parser("report", help="regenerate report.html / report.md of a run folder")
    report.add_argument("run_dir", type=Path)
    return parser


# -- commands --------------------------------------------------------------------------------------
def cmd_train(args: argparse.Namespace) -> int:
    from sentsim.training.config import TrainConfig
    from sentsim.training.run import RunOptions, run_training

    chosen = recipe(args.recipe)
    for name in RECIPE_OPTIONS:
        if getattr(args, name) is not None:
            chosen[name] = getattr(args, name)
    config = TrainConfig(**chosen, loss_scale=args.loss_scale, max_grad_norm=args.max_grad_norm, seed=args.seed,
                         precision=args.precision, length_grouping=not args.no_length_grouping)
    options = RunOptions(output=args.output, base_model=args.base_model, pooling=args.pooling,
                         normalize=args.normalize, data=args.data, dev_data=args.dev_data, test_data=args.test_data,
                         skip_bad_rows=args.skip_bad_rows, max_seq_length=args.max_seq_length,
                         evaluate_test=not args.no_test, quiet=True if args.quiet or args.json else None,
                         command=_command_line(args.argv),
                         data_options=_data_options(args))
    if args.seeds < 1:
        raise UsageError("--seeds must be at least 1")
    if args.seeds > 1:
        return _train_seeds(args, options, config)
    summary = run_training(options, config).summary
    if args.json:
        _print_json(_train_figures(summary, args.output))
        return EXIT_OK
    timing = summary["timing"]
    print(f"run folder: {args.output}  (model: {args.output / 'model'}, report: {args.output / 'report.html'})")
    for split in ("dev", "test"):
        if split in summary:
            base = summary["base"].get(split, {}).get("spearman_cosine")
            low, high = summary.get(f"{split}_ci", {}).get("spearman_cosine", (None, None))
            ci = f"  95% CI [{low:.2f}, {high:.2f}]" if low is not None else ""
            was = f"  (base model: {base:.2f})" if base is not None else ""
            print(f"{split} Spearman(cosine): {summary[split]['spearman_cosine']:.2f}{ci}{was}")
    print(f"training: {timing['train_seconds']:.1f} s, {timing['pairs_per_second']:.1f} pairs/s, "
          f"peak memory {timing['peak_rss_mb']:.0f} MB; wall {timing['wall_seconds']:.1f} s")
    return EXIT_OK


def _train_figures(summary: dict[str, Any], output: Path) -> dict[str, Any]:
    """The flat figures of one run (``dev_spearman_cosine``, ``test_...``, timing, calibration)."""
    figures: dict[str, Any] = {}
    for split in ("dev", "test"):
        for name, value in summary.get(split, {}).items():
            figures[f"{split}_{name}"] = value
    figures.update({f"base_{split}_spearman_cosine": summary["base"][split]["spearman_cosine"]
                    for split in ("dev", "test") if summary["base"].get(split)})
    figures.update(summary["timing"])
    figures.update({"best_step": summary["best_step"], "output": str(output)})
    figures.update(summary.get("calibration", {}))
    return figures


def _train_seeds(args: argparse.Namespace, options: Any, config: Any) -> int:
    from sentsim.training.run import run_seeds

    # An averaged model with seed s uses runs s … s+N-1, so seeds step by N and share no run.
    step = config.average
    result = run_seeds(options, config, seeds=[args.seed + step * offset for offset in range(args.seeds)])
    if args.json:
        _print_json(result)
        return EXIT_OK
    for run in result["runs"]:
        test = f", test {run['test_spearman_cosine']:.2f}" if run.get("test_spearman_cosine") is not None else ""
        print(f"seed {run['seed']}: dev {run['dev_spearman_cosine']:.2f}{test}  "
              f"({run['train_seconds']:.0f} s training, {run['wall_seconds']:.0f} s wall)  → {run['output']}")
    for split in ("dev", "test"):
        key = f"{split}_spearman_cosine"
        if key in result["mean"]:
            print(f"{split} Spearman(cosine) over {len(result['runs'])} seeds: "
                  f"{result['mean'][key]:.2f} ± {result['std'][key]:.2f} (mean ± sample std)")
    print(f"summary: {args.output / 'seeds.json'}")
    return EXIT_OK


def cmd_evaluate(args: argparse.Namespace) -> int:
    from sentsim.evaluation.evaluate import evaluate_pairs

    dataset = _load_data(args, split=args.split)
    model = _load_model(args.model)
    result = evaluate_pairs(model, dataset, batch_size=args.batch_size, precision=args.precision,
                            bootstrap=args.bootstrap, seed=args.seed, show_progress=None if not args.quiet else False)
    if args.json:
        _print_json({"model": args.model, "data": dataset.source, **result.to_dict()})
        return EXIT_OK
    print(f"{args.model} on {dataset.source}: {len(dataset)} pairs")
    print(f"{'similarity':<12}{'Pearson':>10}{'Spearman':>10}   Spearman 95% CI")
    for measure in METRIC_ORDER:
        interval = result.confidence_intervals.get(f"spearman_{measure}")
        ci = f"   [{interval[0]:.2f}, {interval[1]:.2f}]" if interval else ""
        print(f"{measure:<12}{result.metrics[f'pearson_{measure}']:>10.2f}"
              f"{result.metrics[f'spearman_{measure}']:>10.2f}{ci}")
    if result.per_genre:
        print("Spearman(cosine) by genre: " + ", ".join(f"{g} {v:.2f}" for g, v in result.per_genre.items()))
    return EXIT_OK


def cmd_similarity(args: argparse.Namespace) -> int:
    if args.pairs is None and len(args.texts) != 2:
        raise UsageError("similarity takes two texts, or --pairs FILE")
    if args.pairs is not None and args.texts:
        raise UsageError("give either two texts or --pairs FILE, not both")
    model = _load_model(args.model)
    if args.pairs is None:
        cosine = float(model.similarity(args.texts[0], args.texts[1], batch_size=args.batch_size))
        if model.calibration is not None:
            print(f"{float(model.calibration.predict([cosine])[0]):.1f} / 5  (cosine {cosine:.3f})")
        else:
            print(f"cosine {cosine:.3f}  (no 0–5 calibration: run `sentsim calibrate` to add one)")
        return EXIT_OK
    from sentsim.inference.scoring import score_pair_file

    score_pair_file(model, Path(args.pairs), output=args.output, batch_size=args.batch_size,
                    precision=args.precision, quiet=args.quiet)
    return EXIT_OK


def cmd_encode(args: argparse.Namespace) -> int:
    import numpy as np

    from sentsim.persistence.atomic import atomic_write_bytes

    if not args.file.is_file():
        raise ConfigError(f"no such file: {args.file}")
    try:
        lines = args.file.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as error:
        raise ConfigError(f"{args.file}: not UTF-8 text ({error.reason} at byte {error.start})") from error
    sentences = [line for line in lines if line.strip()]
    if not sentences:
        raise ConfigError(f"{args.file}: no sentences (the file is empty)")
    model = _load_model(args.model)
    embeddings = model.encode(sentences, batch_size=args.batch_size, normalize=args.normalize,
                              precision=args.precision, show_progress=None if not args.quiet else False)
    output = args.output or args.file.with_suffix(".npy")
    buffer = io.BytesIO()
    np.save(buffer, embeddings)
    atomic_write_bytes(output, buffer.getvalue())
    print(f"wrote {embeddings.shape[0]} × {embeddings.shape[1]} embeddings to {output}")
    return EXIT_OK


def cmd_calibrate(args: argparse.Namespace) -> int:
    from sentsim.evaluation.evaluate import evaluate_pairs
    from sentsim.evaluation.metrics import mean_absolute_error
    from sentsim.inference.calibration import IsotonicCalibration

    target = args.output
    if target is None:
        if not Path(args.model).is_dir():
            raise UsageError(f"{args.model} is not a folder; pass --output FOLDER for the calibrated copy")
        target = Path(args.model)
    dataset = _load_data(args, split=args.split)
    model = _load_model(args.model)
    result = evaluate_pairs(model, dataset, batch_size=args.batch_size, precision=args.precision,
                            show_progress=None if not args.quiet else False)
    calibration = IsotonicCalibration.fit(result.cosines, result.gold * 5.0, source=dataset.source)
    before = mean_absolute_error(result.cosines.clip(0, 1) * 5.0, result.gold * 5.0)
    after = mean_absolute_error(calibration.predict(result.cosines), result.gold * 5.0)
    if args.output is None:
        calibration.save(target)
    else:
        model.calibration = calibration
        model.save(target)
    print(f"calibrated on {len(dataset)} pairs of {dataset.source}: MAE {before:.3f} (5 × cosine) → "
          f"{after:.3f} (calibrated, in-sample); saved to {target}")
    return EXIT_OK


def cmd_compare(args: argparse.Namespace) -> int:
    from sentsim.evaluation.metrics import paired_bootstrap, pairwise_similarities, spearman
    from sentsim.inference.encode import encode_pairs

    dataset = _load_data(args, split=args.split)
    cosines = []
    for name in (args.model_a, args.model_b):
        model = _load_model(name)
        a, b = encode_pairs(model, dataset.sentences1, dataset.sentences2, batch_size=args.batch_size,
                            precision=args.precision, show_progress=None if not args.quiet else False)
        cosines.append(pairwise_similarities(a, b)["cosine"])
        del model
    comparison = paired_bootstrap(dataset.scores, cosines[0], cosines[1], n_resamples=args.bootstrap,
                                  seed=args.seed)

    result = {"model_a": args.model_a, "model_b": args.model_b, "data": dataset.source, "n_pairs": len(dataset),
              "spearman_a": spearman(dataset.scores, cosines[0]), "spearman_b": spearman(dataset.scores, cosines[1]),
              "difference": comparison.difference, "ci_low": comparison.ci_low, "ci_high": comparison.ci_high,
              "p_value": comparison.p_value, "n_resamples": comparison.n_resamples}
    if args.json:
        _print_json(result)
        return EXIT_OK
    print(f"A: {args.model_a}  Spearman(cosine) {result['spearman_a']:.2f}")
    print(f"B: {args.model_b}  Spearman(cosine) {result['spearman_b']:.2f}")
    print(f"A − B = {comparison.difference:+.2f}  95% CI [{comparison.ci_low:+.2f}, {comparison.ci_high:+.2f}]  "
          f"p = {comparison.p_value:.3g}  ({len(dataset)} pairs of {dataset.source}, "
          f"{comparison.n_resamples} paired resamples)")
    return EXIT_OK


def cmd_report(args: argparse.Namespace) -> int:
    from sentsim.reporting import write_report

    html, markdown = write_report(args.run_dir)
    print(f"wrote {html} and {markdown}")
    return EXIT_OK


COMMANDS = {"train": cmd_train, "evaluate": cmd_evaluate, "similarity": cmd_similarity, "encode": cmd_encode,
            "calibrate": cmd_calibrate, "compare": cmd_compare, "report": cmd_report}


# -- helpers --------------------------------------------------------------------------------------
def _load_model(name: str):
    from sentsim.encoders.bi_encoder import SentenceTransformer

    return SentenceTransformer(name)


def _load_data(args: argparse.Namespace, *, split: str):
    from sentsim.data import load_pairs

    dataset = load_pairs(args.data, split=split, skip_bad_rows=args.skip_bad_rows, **_data_options(args))
    if dataset.skipped:
        print(f"warning: {dataset.skipped_summary()}", file=sys.stderr)
    return dataset.require_scorable()


def _print_json(obj: Any) -> None:
    """One JSON object on stdout; NaN (a correlation of constant scores) becomes null, as JSON has no NaN."""
    def finite(value: Any) -> Any:
        if isinstance(value, float) and not math.isfinite(value):
            return None
        if isinstance(value, dict):
            return {key: finite(item) for key, item in value.items()}
        if isinstance(value, list | tuple):
            return [finite(item) for item in value]
        return value

    print(json.dumps(finite(obj), allow_nan=False))


def _describe_recipe(values: dict[str, Any]) -> str:
    text = (f"{values['loss']} loss, batch {values['batch_size']}, lr {values['learning_rate']:g}, "
            f"{values['epochs']} epoch{'s' if values['epochs'] > 1 else ''}, warmup {values['warmup_ratio']:g}")
    if values.get("patience"):
        text += f", patience {values['patience']}"
    if values.get("average", 1) > 1:
        text += f", weights averaged over {values['average']} seeds"
    return text


def _command_line(argv: Sequence[str]) -> str:
    return "sentsim " + " ".join(shlex.quote(arg) for arg in argv)


def _version() -> str:
    from sentsim import __version__

    return __version__


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    parser = build_parser()
    try:
        argv = list(sys.argv[1:] if argv is None else argv)
        args = parser.parse_args(argv)
        args.argv = argv  # what train records as the command; sys.argv is the host's when called in-process
        return COMMANDS[args.command](args)
    except SentsimError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
