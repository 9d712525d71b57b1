"""A/B of training-speed levers in one process: same steps, alternating order, losses and weights compared.

Each lever trains a fresh all-MiniLM-L6-v2 for ``--steps`` classic-recipe steps (batch 16, cosine loss,
STSb train) with sentsim's ``train``; rounds alternate the lever order. Per lever: median wall and
CPU seconds of the training call, and how far its per-step losses and final weights are from the
baseline's (0 for a lever that must not change what is learnt; float noise is ~1e-6).

    nice -n 10 .venv/bin/python experiments/train_levers.py --steps 60 --rounds 3 --dtype fp32
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from sentsim import SentenceTransformer
from sentsim.data import read_stsbenchmark
from sentsim.persistence.hub import bundled_model_path
from sentsim.training import TrainConfig, train

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "stsbenchmark"


def _no_pooler(model: SentenceTransformer) -> Callable[[], None]:
    bert = model[0].auto_model
    pooler, bert.pooler = bert.pooler, None  # BertModel skips a None pooler; put back afterwards
    return lambda: setattr(bert, "pooler", pooler)


def _eager_attention(model: SentenceTransformer) -> Callable[[], None]:
    config = model[0].auto_model.config
    previous, config._attn_implementation = config._attn_implementation, "eager"
    return lambda: setattr(config, "_attn_implementation", previous)


def _one_thread(model: SentenceTransformer) -> Callable[[], None]:
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    return lambda: torch.set_num_threads(previous)


def _compile(model: SentenceTransformer) -> Callable[[], None]:
    model[0].auto_model.compile(dynamic=None)
    return lambda: None


#: lever → (what it does to the model before training, TrainConfig changes)
LEVERS: dict[str, tuple[Callable[[SentenceTransformer], Callable[[], None]] | None, dict[str, Any]]] = {
    "baseline": (None, {}),
    "no_pooler": (_no_pooler, {}),
    "eager_attention": (_eager_attention, {}),
    "one_thread": (_one_thread, {}),
    "pad_none": (None, {"pad_to_multiple_of": None}),
    "pad_8": (None, {"pad_to_multiple_of": 8}),
    "pad_32": (None, {"pad_to_multiple_of": 32}),
    "compile_pad_32": (_compile, {"pad_to_multiple_of": 32}),
}


def run_lever(name: str, pairs: Any, *, steps: int, dtype: str) -> dict[str, Any]:
    change, overrides = LEVERS[name]
    model = SentenceTransformer(str(bundled_model_path()))
    undo = change(model) if change is not None else (lambda: None)
    config = TrainConfig(batch_size=16, max_steps=steps, dtype=dtype, log_every=1, seed=42, **overrides)
    wall, cpu = time.perf_counter(), time.process_time()
    try:
        result = train(model, sentences_a=pairs.sentences1, sentences_b=pairs.sentences2, labels=pairs.scores,
                       config=config, quiet=True)
    finally:
        undo()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    losses = [record["loss"] for record in result.records if record["kind"] == "train"]
    weights = {key: value.detach().clone() for key, value in model.state_dict().items()}
    return {"lever": name, "wall_seconds": wall, "cpu_seconds": cpu, "loop_seconds": result.train_seconds,
            "losses": losses, "weights": weights}


def compare(result: dict[str, Any], baseline: dict[str, Any]) -> dict[str, float]:
    loss_gap = max(abs(a - b) for a, b in zip(result["losses"], baseline["losses"], strict=True))
    shared = [key for key in baseline["weights"] if key in result["weights"]]
    weight_gap = max(float((result["weights"][key] - baseline["weights"][key]).abs().max()) for key in shared)
    return {"max_loss_difference": loss_gap, "max_weight_difference": weight_gap}


# -- per-step A/B: the same batches and weights for every lever, alternating step by step ---------------
#: lever → (pad_to_multiple_of, attention implementation, pooler on, threads or None for torch's default)
STEP_LEVERS: dict[str, tuple[int | None, str, bool, int | None]] = {
    "baseline": (8, "sdpa", True, None),
    "no_pooler": (8, "sdpa", False, None),
    "eager_attention": (8, "eager", True, None),
    "pad_none": (None, "sdpa", True, None),
    "pad_16": (16, "sdpa", True, None),
    "pad_32": (32, "sdpa", True, None),
    "one_thread": (8, "sdpa", True, 1),
}


def step_ab(pairs: Any, *, batches: int, rounds: int, dtype: str, names: list[str],
            threads: int | None = None) -> dict[str, Any]:
    """Forward + loss + backward (no optimizer step, so weights stay fixed) of the same ``batches``
    classic-recipe batches under each lever in turn, alternating order; seconds per step and the
    largest loss/gradient difference from the baseline."""
    from sentsim.inference.forward import autocast_context
    from sentsim.losses import build_loss
    from sentsim.training.batching import LengthGroupedSampler, tokenize_pairs

    model = SentenceTransformer(str(bundled_model_path()))
    model.train()
    bert, transformer = model[0].auto_model, model[0]
    pooler, default_threads = bert.pooler, threads or torch.get_num_threads()
    tokenized = tokenize_pairs(model.token_ids, pairs.sentences1, pairs.sentences2, pairs.scores)
    sampler = list(LengthGroupedSampler(tokenized.lengths, batch_size=16, seed=42, group_batches=64))
    chosen = sampler[:: max(1, len(sampler) // batches)][:batches]
    loss_fn = build_loss("cosine")
    device = torch.device("cpu")
    seconds: dict[str, list[float]] = {name: [] for name in names}
    cpu_seconds: dict[str, list[float]] = {name: [] for name in names}
    gaps: dict[str, float] = {name: 0.0 for name in names}
    for round_index in range(rounds):
        for index, rows in enumerate(chosen):
            ids = [tokenized.ids_a[i] for i in rows] + [tokenized.ids_b[i] for i in rows]
            reference = None
            order = names if (round_index + index) % 2 == 0 else names[::-1]
            results = {}
            for name in order:
                pad, attention, pooler_on, threads = STEP_LEVERS[name]
                bert.config._attn_implementation = attention
                bert.pooler = pooler if pooler_on else None
                torch.set_num_threads(threads or default_threads)
                features = transformer.collate(ids, pad_to_multiple_of=pad)
                torch.manual_seed(index)  # the same dropout masks for every lever (same shapes)
                started, cpu_started = time.perf_counter(), time.process_time()
                with autocast_context(dtype, device):
                    embeddings = model(features)["sentence_embedding"]
                value = loss_fn(*embeddings.float().chunk(2), tokenized.labels[rows].float())
                value.backward()
                seconds[name].append(time.perf_counter() - started)
                cpu_seconds[name].append(time.process_time() - cpu_started)
                grads = torch.cat([p.grad.flatten() for n, p in model.named_parameters()
                                   if p.grad is not None and "pooler" not in n])
                results[name] = (float(value.detach()), grads)
                model.zero_grad(set_to_none=True)
            reference = results["baseline"]
            for name, (loss_value, grads) in results.items():
                gap = max(abs(loss_value - reference[0]), float((grads - reference[1]).abs().max()))
                gaps[name] = max(gaps[name], gap)
    bert.pooler, bert.config._attn_implementation = pooler, "sdpa"
    torch.set_num_threads(default_threads)
    total = {name: sum(values) for name, values in seconds.items()}
    cpu = {name: sum(values) for name, values in cpu_seconds.items()}
    return {name: {"seconds_per_step": round(total[name] / len(seconds[name]), 4),
                   "speedup": round(total["baseline"] / total[name], 3),
                   "cpu_seconds_per_step": round(cpu[name] / len(seconds[name]), 4),
                   "cpu_speedup": round(cpu["baseline"] / cpu[name], 3),
                   "max_loss_or_grad_difference": gaps[name]} for name in names}


def compile_ab(pairs: Any, *, batches: int, dtype: str, pad: int | None = None,
               regional: bool = False) -> dict[str, Any]:
    """torch.compile (inductor, dynamic=None) of the BertModel against eager, both padded to ``pad``:
    the first call of each new padded length (compile time) apart from the steady state, alternating.

    ``regional``: compile each BertLayer's forward instead (``dynamic=True``, one graph that all six
    layers share, so one compile for every length), and run eager with the training loop's fast
    dropout masks, as ``train`` does; the compiled layers keep torch's dropout (inductor's masks)."""
    from contextlib import nullcontext

    from sentsim.inference.forward import autocast_context
    from sentsim.losses import build_loss
    from sentsim.training.batching import LengthGroupedSampler, tokenize_pairs
    from sentsim.training.dropout import fast_dropout

    model = SentenceTransformer(str(bundled_model_path()))
    model.train()
    transformer = model[0]
    eager = transformer.auto_model
    compiled = eager if regional else torch.compile(eager, dynamic=None)
    layers = list(eager.encoder.layer)
    eager_forwards = [layer.forward for layer in layers]
    compiled_forwards = [torch.compile(forward, dynamic=True) for forward in eager_forwards] if regional else []
    tokenized = tokenize_pairs(model.token_ids, pairs.sentences1, pairs.sentences2, pairs.scores)
    sampler = list(LengthGroupedSampler(tokenized.lengths, batch_size=16, seed=42, group_batches=64))
    chosen = sampler[:: max(1, len(sampler) // batches)][:batches]
    loss_fn = build_loss("cosine")
    seen: set[tuple[int, int]] = set()
    first_calls, steady = [], {"eager": [], "compiled": []}
    for index, rows in enumerate(chosen):
        ids = [tokenized.ids_a[i] for i in rows] + [tokenized.ids_b[i] for i in rows]
        features = transformer.collate(ids, pad_to_multiple_of=pad)
        shape = tuple(features["input_ids"].shape)
        order = ("compiled", "eager") if index % 2 == 0 else ("eager", "compiled")
        for name in order:
            transformer.auto_model = compiled if name == "compiled" else eager
            if regional:
                chosen_forwards = compiled_forwards if name == "compiled" else eager_forwards
                for layer, forward in zip(layers, chosen_forwards, strict=True):
                    layer.forward = forward
            masks = fast_dropout(model) if regional and name == "eager" else nullcontext()
            started = time.perf_counter()
            with masks, autocast_context(dtype, torch.device("cpu")):
                embeddings = model({key: value.clone() for key, value in features.items()})["sentence_embedding"]
            loss_fn(*embeddings.float().chunk(2), tokenized.labels[rows].float()).backward()
            elapsed = time.perf_counter() - started
            model.zero_grad(set_to_none=True)
            if name == "compiled" and (shape not in seen if not regional else not first_calls):
                first_calls.append({"shape": list(shape), "seconds": round(elapsed, 2)})
                seen.add(shape)
            else:
                steady[name].append(elapsed)
            print(f"batch {index} {name:<8} {shape} {elapsed:6.2f} s", file=sys.stderr, flush=True)
    transformer.auto_model = eager
    for layer in layers if regional else []:
        del layer.forward  # the class's forward again
    return {"pad_to_multiple_of": pad, "regional": regional, "first_calls": first_calls,
            "steady_seconds_per_step": {name: round(statistics.mean(values), 4) if values else None
                                        for name, values in steady.items()}}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--dtype", choices=("fp32", "bf16"), default="fp32")
    parser.add_argument("--levers", default=",".join(name for name in LEVERS if name != "compile_pad_32"))
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--threads", type=int, default=None,
                        help="per-step A/B: torch threads for every lever (default: torch's own)")
    parser.add_argument("--per-step", type=int, default=0, metavar="BATCHES",
                        help="instead: per-step A/B of STEP_LEVERS on this many batches (forward + backward only)")
    parser.add_argument("--compile", type=int, default=0, metavar="BATCHES",
                        help="instead: torch.compile vs eager on this many batches (compile time and steady state)")
    parser.add_argument("--regional", action="store_true",
                        help="with --compile: compile each BertLayer (dynamic shapes) instead of the whole model")
    arguments = parser.parse_args(argv)
    if arguments.threads:
        torch.set_num_threads(arguments.threads)
    if arguments.compile:
        figures = compile_ab(read_stsbenchmark(DATA, "train"), batches=arguments.compile, dtype=arguments.dtype,
                             pad=None, regional=arguments.regional)
        print(json.dumps(figures))
        if arguments.json is not None:
            arguments.json.write_text(json.dumps(figures, indent=2) + "\n")
        return
    if arguments.per_step:
        names = ["baseline", *[name for name in arguments.levers.split(",") if name in STEP_LEVERS and
                               name != "baseline"]]
        summary = step_ab(read_stsbenchmark(DATA, "train"), batches=arguments.per_step, rounds=arguments.rounds,
                          dtype=arguments.dtype, names=names, threads=arguments.threads)
        for name, figures in summary.items():
            print(f"{name:<16} {figures['seconds_per_step']:.4f} s/step ({figures['speedup']:.3f}×)  cpu "
                  f"{figures['cpu_seconds_per_step']:.4f} s/step ({figures['cpu_speedup']:.3f}×)  "
                  f"max |Δloss|, |Δgrad| {figures['max_loss_or_grad_difference']:.2e}")
        if arguments.json is not None:
            arguments.json.write_text(json.dumps({"per_step": arguments.per_step, "rounds": arguments.rounds,
                                                  "dtype": arguments.dtype, "levers": summary}, indent=2) + "\n")
        return
    names = arguments.levers.split(",")
    if "baseline" not in names:
        names.insert(0, "baseline")
    pairs = read_stsbenchmark(DATA, "train")
    results: dict[str, list[dict[str, Any]]] = {name: [] for name in names}
    for round_index in range(arguments.rounds):
        for name in names if round_index % 2 == 0 else names[::-1]:
            result = run_lever(name, pairs, steps=arguments.steps, dtype=arguments.dtype)
            results[name].append(result)
            print(f"round {round_index + 1} {name:<16} wall {result['wall_seconds']:6.2f} s  cpu "
                  f"{result['cpu_seconds']:6.2f} s  loop {result['loop_seconds']:6.2f} s", file=sys.stderr, flush=True)
    reference = results["baseline"][0]
    summary = {}
    for name in names:
        runs = results[name]
        summary[name] = {key: round(statistics.median(run[key] for run in runs), 3)
                         for key in ("wall_seconds", "cpu_seconds", "loop_seconds")}
        summary[name].update(compare(runs[-1], reference))  # baseline: its last round vs its first
    base = summary["baseline"]["loop_seconds"]
    for name, figures in summary.items():
        figures["loop_speedup"] = round(base / figures["loop_seconds"], 3)
        print(f"{name:<16} loop {figures['loop_seconds']:7.2f} s ({figures['loop_speedup']:.3f}×)  "
              f"cpu {figures['cpu_seconds']:7.2f} s  max |Δloss| {figures['max_loss_difference']:.2e}  "
              f"max |Δweight| {figures['max_weight_difference']:.2e}")
    if arguments.json is not None:
        arguments.json.write_text(json.dumps({"steps": arguments.steps, "rounds": arguments.rounds,
                                              "dtype": arguments.dtype, "levers": summary}, indent=2) + "\n")


if __name__ == "__main__":
    main()
