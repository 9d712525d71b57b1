"""``sentsim train``: fine-tune on scored pairs and write a run folder (parse → run_training → print)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from sentsim.cli import common, train_resume
from sentsim.cli.common import EXIT_OK, UsageError
from sentsim.persistence.hub import DEFAULT_MODEL
from sentsim.training.recipes import RECIPE_OPTIONS, RECIPES, describe_recipe, recipe_values

#: What --pooling accepts (sentsim.models.pooling.POOLING_MODES, spelled as people type them);
#: listed here so that --help need not import torch. A test keeps the two in step.
POOLING_CHOICES = ("mean", "cls", "max", "mean-sqrt-len", "weighted-mean", "last-token")
_POOLING_SPELLINGS = {"mean_sqrt_len": "mean-sqrt-len", "weightedmean": "weighted-mean",
                      "weighted_mean": "weighted-mean", "lasttoken": "last-token", "last_token": "last-token",
                      "cls_token": "cls"}


def pooling_mode(text: str) -> str:
    name = text.strip().lower()
    return _POOLING_SPELLINGS.get(name, name)


def add_parser(commands: Any) -> None:
    train = common.add_command(
        commands, "train", help="fine-tune a model on scored pairs (default: STSb)",
        description="Fine-tune a sentence-embedding model on scored sentence pairs, keep the best dev "
                    "checkpoint, evaluate it on test, calibrate scores to 0–5 and write a run folder with "
                    "model and report.")
    train.add_argument("--base-model", default=DEFAULT_MODEL,
                       help=f"model folder or hub name to start from (default: {DEFAULT_MODEL}, bundled)")
    train.add_argument("--pooling", type=pooling_mode, choices=POOLING_CHOICES, default=None, metavar="MODE",
                       help="build from scratch: keep only the base transformer and add new pooling ("
                            + ", ".join(POOLING_CHOICES) + "; default: none, keep the base model's pooling)")
    train.add_argument("--normalize", action="store_true",
                       help="add an L2-normalize layer (to the new pooling, or to the base model when it has "
                            "none; default: off)")
    _add_data_options(train)
    train.add_argument("--output", "-o", type=Path, default=Path("runs/stsb"),
                       help="run folder to write (config, metrics, report, model/), created fresh; an existing "
                            "non-empty folder is refused unless --overwrite. Default: runs/stsb")
    train.add_argument("--overwrite", action="store_true",
                       help="replace an existing --output folder, but only one sentsim wrote (a run, or a --seeds "
                            "parent) holding nothing else; any other folder, a file or . is refused anyway "
                            "(default: off)")
    _add_hyper_options(train.add_argument_group("hyper-parameters (unset ones come from --recipe)"))
    common.add_device_option(train)
    common.add_allow_pickle_option(train)
    train_resume.add_checkpoint_options(train)
    train.add_argument("--quiet", action="store_true", help="no progress bars")
    train.add_argument("--json", action="store_true", help="print the final figures as one JSON object")


def _add_data_options(train: argparse.ArgumentParser) -> None:
    train.add_argument("--data", metavar="PATH",
                       help="STSb release folder, or a training pair file (then --dev-data is needed). "
                            "Default: the STS benchmark from $SENTSIM_STSB_DIR, the cache, or a download")
    train.add_argument("--dev-data", metavar="FILE",
                       help="dev pair file (picks the best checkpoint; default: the dev split of the --data folder)")
    train.add_argument("--test-data", metavar="FILE",
                       help="test pair file, evaluated once at the end (default: the test split of the --data "
                            "folder; none with a pair file)")
    train.add_argument("--no-test", action="store_true",
                       help="do not read the test split at all (for tuning runs that must not see test); "
                            "refused together with --test-data")
    common.add_column_options(train.add_argument_group("pair-file columns"))


def _from_recipe(option: str) -> str:
    return f"(default: recipe default — {recipe_values(option)})"


def _add_hyper_options(hyper: argparse._ArgumentGroup) -> None:
    hyper.add_argument("--recipe", choices=sorted(RECIPES), default="default",
                       help="named hyper-parameter set: " + "; ".join(
                           f"{name} = {describe_recipe(values)}" for name, values in RECIPES.items()))
    hyper.add_argument("--loss", default=None,
                       help="cosine (MSE of cosine vs score), cosent, angle, or a weighted sum such as "
                            "cosine+cosent or cosine+0.03*cosent; mnrl (in-batch negatives) trains on an unscored "
                            "--data file with anchor, positive[, negative] columns " + _from_recipe("loss"))
    hyper.add_argument("--loss-scale", type=float, default=None,
                       help="scale of cosent/angle (default: each loss's own, 20)")
    hyper.add_argument("--matryoshka-dims", type=_dimensions, default=None, metavar="D1,D2,...",
                       help="also train the loss on these leading slices of the embedding (Matryoshka), e.g. "
                            "384,256,128,64, so the model works shortened (encode/evaluate --truncate-dim) "
                            "(default: the whole embedding only)")
    hyper.add_argument("--batch-size", type=int, default=None, help="pairs per step " + _from_recipe("batch_size"))
    hyper.add_argument("--lr", "--learning-rate", dest="learning_rate", type=common.finite_float, default=None,
                       help="peak learning rate of AdamW " + _from_recipe("learning_rate"))
    hyper.add_argument("--epochs", type=int, default=None, help="passes over the training data "
                       + _from_recipe("epochs"))
    hyper.add_argument("--warmup-ratio", type=float, default=None,
                       help="share of steps for linear warmup " + _from_recipe("warmup_ratio"))
    hyper.add_argument("--weight-decay", type=float, default=None, help="AdamW weight decay "
                       + _from_recipe("weight_decay"))
    hyper.add_argument("--max-grad-norm", type=common.finite_float, default=1.0,
                       help="gradient clipping norm (0: no clipping)")
    hyper.add_argument("--seed", type=common.seed_value, default=42, help="random seed; same seed, same result")
    hyper.add_argument("--seeds", type=int, default=1,
                       help="train N times with seeds SEED, SEED+1, ... into OUTPUT/seed-<n>/ and report the "
                            "mean ± std of dev and test Spearman")
    hyper.add_argument("--average", type=int, default=None, metavar="N",
                       help="train N runs (seeds SEED … SEED+N-1) and average their weights (model soup); "
                            "with --seeds, each seed's runs are distinct " + _from_recipe("average"))
    hyper.add_argument("--evaluation-steps", type=int, default=None,
                       help="also evaluate on dev every N steps (0: only after each epoch) "
                            + _from_recipe("evaluation_steps"))
    hyper.add_argument("--patience", type=int, default=None,
                       help="stop after N dev evaluations without improvement (early stopping; none: never) "
                            + _from_recipe("patience"))
    hyper.add_argument("--max-seq-length", type=int, default=None,
                       help="truncate inputs to N tokens (default: the base model's own limit)")
    hyper.add_argument("--dtype", "--precision", dest="dtype", choices=common.PRECISIONS, default="auto",
                       help="compute type (old name: --precision); auto = native bf16 if any, else fp32")
    hyper.add_argument("--no-length-grouping", action="store_true",
                       help="shuffle batches plainly instead of grouping pairs of similar length (slower; "
                            "default: grouped)")
    hyper.add_argument("--torch-dropout", action="store_true",
                       help="draw CPU dropout masks with torch's own sampler (slower; the masks of runs made "
                            "before the fast masks, to repeat their exact numbers)")
    hyper.add_argument("--return-freed-memory", action="store_true",
                       help="CPU training: let glibc return big freed blocks to the system at once, its default "
                            "(slower steps: they page-fault in again; default: keep them in the heap for reuse "
                            "until training ends)")
    hyper.add_argument("--max-forward-tokens", type=_forward_tokens, default="auto", metavar="N|auto|none",
                       help="padded tokens per forward pass; bigger batches are backpropagated in chunks with "
                            "the same gradient, for a lower peak memory. auto: 1024 for the cosine loss (free), "
                            "no limit for ranking losses (there each chunked batch costs one more forward pass) "
                            "(default: auto)")


def _forward_tokens(text: str) -> int | str | None:
    """``--max-forward-tokens``: a positive integer, ``auto`` or ``none``."""
    if text.strip().lower() in ("auto", "none"):
        return None if text.strip().lower() == "none" else "auto"
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, auto or none, not {text!r}")
    return value


def run(args: argparse.Namespace) -> int:
    """``sentsim train``; a process of a multi-process run ends here, without interpreter teardown."""
    from sentsim.training.run import exit_without_teardown, leave_process_group

    try:
        code = _train(args)
    except BaseException:
        leave_process_group()
        raise
    if leave_process_group():
        exit_without_teardown(code)
    return code


def _train(args: argparse.Namespace) -> int:
    from sentsim.training import signals
    from sentsim.training.run import run_training

    seeds = None
    if args.resume is not None and train_resume.is_seeds_run(args.resume):
        options, config, seeds = train_resume.resume_seeds_setup(args)
        args.output = options.output
    elif args.resume is not None:
        options, config = train_resume.resume_setup(args)
        args.output = options.output
    else:
        options, config = _run_setup(args)
        if args.seeds > 1:  # an averaged model with seed s uses runs s … s+N-1: seeds step by N, share no run
            seeds = [args.seed + config.average * offset for offset in range(args.seeds)]
    common.warn_emulated_bf16(config.dtype, config.device)
    try:
        with signals.handled():  # SIGINT/SIGTERM: a checkpoint at the next step, the resume command, 130/143
            if seeds is not None:
                return _train_seeds(args, options, config, seeds=seeds)
            run = run_training(options, config)
    except signals.Interrupted as stop:
        print(f"error: {stop}", file=sys.stderr)
        train_resume.name_earlier_checkpoint(stop, options.output)
        return stop.exit_code
    if run is None:  # a process of a multi-process run other than the main one, which prints
        return EXIT_OK
    summary = run.summary
    for text in summary.warnings:
        print(f"warning: {text}", file=sys.stderr)
    if args.json:
        common.print_json(summary.figures(args.output))
    else:
        _print_run(summary.to_dict(), args.output)
    return EXIT_OK


def _run_setup(args: argparse.Namespace) -> tuple[Any, Any]:
    """The run options and training config the arguments ask for; contradictions are usage errors."""
    from sentsim.training.config import TrainConfig
    from sentsim.training.recipes import merge_recipe
    from sentsim.training.run import RunOptions

    if args.no_test and args.test_data is not None:
        raise UsageError("--no-test and --test-data contradict each other: give one or the other")
    chosen = merge_recipe(args.recipe, {name: getattr(args, name) for name in RECIPE_OPTIONS})
    config = TrainConfig(**chosen, loss_scale=args.loss_scale, matryoshka_dims=args.matryoshka_dims,
                         max_grad_norm=args.max_grad_norm, seed=args.seed,
                         dtype=args.dtype, length_grouping=not args.no_length_grouping,
                         fast_dropout=not args.torch_dropout, keep_freed_memory=not args.return_freed_memory,
                         max_forward_tokens=args.max_forward_tokens,
                         device=common.device(args))
    options = RunOptions(output=args.output, overwrite=args.overwrite, base_model=args.base_model,
                         pooling=args.pooling,
                         normalize=args.normalize, data=args.data, dev_data=args.dev_data, test_data=args.test_data,
                         skip_bad_rows=args.skip_bad_rows, max_seq_length=args.max_seq_length,
                         allow_pickle=args.allow_pickle, evaluate_test=not args.no_test,
                         quiet=True if args.quiet or args.json else None, save_steps=args.save_steps,
                         save_total_limit=args.save_total_limit,
                         command=common.command_line(args.argv), data_options=common.data_options(args))
    if args.seeds < 1:
        raise UsageError("--seeds must be at least 1")
    if args.seeds > 1 and args.save_steps is not None:
        raise UsageError("--save-steps saves a single run's checkpoints: not with --seeds")
    return options, config


def _print_run(summary: dict[str, Any], output: Path) -> None:
    timing = summary["timing"]
    print(f"run folder: {output}  (model: {output / 'model'}, report: {output / 'report.html'})")
    for split in ("dev", "test"):
        if split in summary:
            base = summary["base"].get(split, {}).get("spearman_cosine")
            low, high = summary.get(f"{split}_ci", {}).get("spearman_cosine", (None, None))
            ci = f"  95% CI [{low:.2f}, {high:.2f}]" if low is not None else ""
            was = f"  (base model: {base:.2f})" if base is not None else ""
            print(f"{split} Spearman(cosine): {summary[split]['spearman_cosine']:.2f}{ci}{was}")
    if summary.get("test_by_dimension"):
        print("test Spearman(cosine) by dimensions kept: "
              + ", ".join(f"{dim} {value:.2f}" for dim, value in summary["test_by_dimension"].items()))
    print(f"training: {timing['train_seconds']:.1f} s, {timing['pairs_per_second']:.1f} pairs/s, "
          f"peak memory {timing['peak_rss_mb']:.0f} MB; wall {timing['wall_seconds']:.1f} s")


def _train_seeds(args: argparse.Namespace, options: Any, config: Any, *, seeds: list[int]) -> int:
    from sentsim.training.seeds import run_seeds

    result = run_seeds(options, config, seeds=seeds, resume=args.resume is not None)
    if args.json:
        common.print_json(result)
        return EXIT_OK
    for entry in result["runs"]:
        test = f", test {entry['test_spearman_cosine']:.2f}" if entry.get("test_spearman_cosine") is not None else ""
        print(f"seed {entry['seed']}: dev {entry['dev_spearman_cosine']:.2f}{test}  "
              f"({entry['train_seconds']:.0f} s training, {entry['wall_seconds']:.0f} s wall)  → {entry['output']}")
    for split in ("dev", "test"):
        key = f"{split}_spearman_cosine"
        if key in result["mean"]:
            print(f"{split} Spearman(cosine) over {len(result['runs'])} seeds: "
                  f"{result['mean'][key]:.2f} ± {result['std'][key]:.2f} (mean ± sample std)")
    print(f"summary: {args.output / 'seeds.json'}")
    return EXIT_OK


def _dimensions(text: str) -> tuple[int, ...]:
    """``--matryoshka-dims 384,256,128``: whole numbers of at least 1, comma-separated."""
    dims = tuple(common.positive_int(part.strip()) for part in text.split(","))
    if len(set(dims)) != len(dims):
        raise argparse.ArgumentTypeError(f"a dimension is given twice in {text!r}")
    return dims
