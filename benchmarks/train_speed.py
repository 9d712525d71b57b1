"""Training speed on CPU: sentsim vs sentence-transformers fine-tuning all-MiniLM-L6-v2 on STSb train.

Both libraries do the same work — same base model files, the STSb train pairs, CosineSimilarityLoss,
batch 16, learning rate 2e-5, 10 % linear warm-up, one epoch, the same seed — each in its own fresh
worker process, back to back, ``--repeat`` times. Only the training call is timed; afterwards each
worker encodes dev and test with its own library's ``encode`` in fp32 and scores both with the same
Spearman(cosine) code, so quality is compared on equal terms. Medians are reported.

    .venv/bin/python benchmarks/train_speed.py --repeat 3 --json results/train_speed.json

The header names the CPU's capability as torch sees it (and its bf16/VNNI/AMX flags), recorded in the
JSON too. ``--emulate-avx2`` makes both workers see an AVX2-only CPU through CPUID (``_isa_cap``), so
torch, oneDNN and sentsim's ``auto`` (fp32 there) choose as on a CPU without AVX-512 and native bf16: a
clearly labelled stand-in for one, on this CPU.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import (
    DEFAULT_DATA,
    emit_result,
    environment_record,
    format_table,
    library_versions,
    load_splits,
    median_of,
    model_folder,
    payload_file,
    peak_rss_mb,
    read_payload,
    run_alternating,
    run_worker,
    spearman_cosine,
    stdout_to_stderr,
    warn_if_busy,
    write_json,
)
from _isa_cap import NOTE as EMULATION_NOTE
from _isa_cap import avx2_environment

#: The classic SBERT STSb recipe, given to both libraries.
BATCH_SIZE = 16
LEARNING_RATE = 2e-5
WARMUP_RATIO = 0.1
EPOCHS = 1
#: Batch size of the post-training dev/test encode (not timed).
EVAL_BATCH_SIZE = 64
DEFAULT_SEED = 42

#: /proc/cpuinfo flags that decide the fast paths (native bf16, int8 dot products, AMX tiles).
CPU_FLAGS = ("avx2", "avx512f", "avx512_bf16", "avx512_vnni", "amx_bf16", "amx_tile")

MODES = ("st", "sentsim")
NAMES = {"st": "sentence-transformers", "sentsim": "sentsim"}


# -- workers --------------------------------------------------------------------------------------
def st_worker(payload: dict[str, Any], seed: int) -> dict[str, Any]:
    """sentence-transformers' fastest training path: the Trainer with its default optimizer."""
    from datasets import Dataset
    from sentence_transformers import (
        SentenceTransformer,
        SentenceTransformerTrainer,
        SentenceTransformerTrainingArguments,
    )
    from sentence_transformers.sentence_transformer.losses import CosineSimilarityLoss

    started = time.perf_counter()
    model = SentenceTransformer(payload["model"])
    load_seconds = time.perf_counter() - started
    train_split = payload["splits"]["train"]
    train_dataset = Dataset.from_dict({"sentence1": train_split["sentences1"],
                                       "sentence2": train_split["sentences2"], "score": train_split["scores"]})
    with tempfile.TemporaryDirectory(prefix="st-bench-") as output_dir:
        arguments = SentenceTransformerTrainingArguments(
            output_dir=output_dir,
            per_device_train_batch_size=BATCH_SIZE,
            learning_rate=LEARNING_RATE,
            # transformers >= 5 reads a float below 1 as a ratio of all steps; it is exactly what
            # ST's own (deprecated) warmup_ratio maps to, minus the deprecation warning.
            warmup_steps=WARMUP_RATIO,
            num_train_epochs=EPOCHS,
            seed=seed,
            eval_strategy="no",
            save_strategy="no",
            report_to="none",
            disable_tqdm=not sys.stderr.isatty(),
        )
        trainer = SentenceTransformerTrainer(model=model, args=arguments, train_dataset=train_dataset,
                                             loss=CosineSimilarityLoss(model))
        started = time.perf_counter()
        output = trainer.train()
        train_seconds = time.perf_counter() - started

    def embed(sentences: list[str]) -> Any:
        return model.encode(sentences, batch_size=EVAL_BATCH_SIZE, precision="float32", show_progress_bar=False)

    return {
        "train_seconds": train_seconds, "steps": int(output.global_step), "load_seconds": load_seconds,
        "optimizer": getattr(arguments.optim, "value", str(arguments.optim)),
        "weight_decay": arguments.weight_decay, "precision": "fp32",
        **score_splits(payload, embed),
    }


def sentsim_worker(payload: dict[str, Any], seed: int, dtype: str = "auto") -> dict[str, Any]:
    """sentsim's library API with its defaults (the classic recipe; precision "auto")."""
    from sentsim import SentenceTransformer
    from sentsim.inference.forward import resolve_precision
    from sentsim.training import TrainConfig, train

    started = time.perf_counter()
    model = SentenceTransformer(payload["model"])
    load_seconds = time.perf_counter() - started
    config = TrainConfig(batch_size=BATCH_SIZE, learning_rate=LEARNING_RATE, epochs=EPOCHS,
                         warmup_ratio=WARMUP_RATIO, seed=seed, dtype=dtype)
    train_split = payload["splits"]["train"]
    started = time.perf_counter()
    result = train(model, sentences_a=train_split["sentences1"], sentences_b=train_split["sentences2"],
                   labels=train_split["scores"], config=config, evaluator=None, quiet=True)
    train_seconds = time.perf_counter() - started

    def embed(sentences: list[str]) -> Any:
        return model.encode(sentences, batch_size=EVAL_BATCH_SIZE, dtype="fp32")

    return {
        "train_seconds": train_seconds, "library_train_seconds": result.train_seconds, "steps": result.steps,
        "load_seconds": load_seconds, "optimizer": "AdamW (sentsim)", "weight_decay": config.weight_decay,
        "precision": resolve_precision(config.dtype, model.device),
        **score_splits(payload, embed),
    }


def score_splits(payload: dict[str, Any], embed: Any) -> dict[str, Any]:
    """Dev and test Spearman(cosine)×100 of the trained model, scored identically for both libraries."""
    scores: dict[str, Any] = {}
    started = time.perf_counter()
    for split in ("dev", "test"):
        data = payload["splits"][split]
        embeddings = embed(data["sentences1"] + data["sentences2"])
        half = len(data["sentences1"])
        scores[split] = spearman_cosine(embeddings[:half], embeddings[half:], data["scores"])
    scores["eval_seconds"] = time.perf_counter() - started
    return scores


def worker_main(mode: str, payload_path: Path, seed: int, dtype: str) -> None:
    """Trains and scores one library, then prints one JSON line (the only thing on stdout)."""
    payload = read_payload(payload_path)
    with stdout_to_stderr() as result_stream:
        result = st_worker(payload, seed) if mode == "st" else sentsim_worker(payload, seed, dtype)
        result["cpu_capability"] = _torch_capability()
        pairs = len(payload["splits"]["train"]["scores"])
        result.update(mode=mode, pairs=pairs, pairs_per_second=pairs / result["train_seconds"],
                      peak_rss_mb=peak_rss_mb(), torch_threads=_torch_threads(), versions=library_versions())
    emit_result(result, result_stream)


def _torch_threads() -> int:
    import torch

    return torch.get_num_threads()


def _torch_capability() -> str:
    import torch

    return torch.backends.cpu.get_cpu_capability()


def cpu_capability() -> dict[str, Any]:
    """The CPU as the workers will see it: torch's kernel capability (in the workers' environment, so
    ``--emulate-avx2`` shows), whether torch finds native bf16, and the /proc/cpuinfo flags that matter."""
    from sentsim.environment import cpu_flags, cpu_name

    probe = ("import json, torch; print(json.dumps({'capability': torch.backends.cpu.get_cpu_capability(), "
             "'native_bf16': bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())}))")
    completed = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=False,
                               env=dict(os.environ))
    seen = json.loads(completed.stdout.strip().splitlines()[-1]) if completed.returncode == 0 else {}
    flags = cpu_flags()
    return {"processor": cpu_name(), "torch_cpu_capability": seen.get("capability"),
            "torch_native_bf16": seen.get("native_bf16"), "flags": {flag: flag in flags for flag in CPU_FLAGS},
            "emulated_isa_environment": {name: os.environ[name] for name in ("LD_PRELOAD", "GLIBC_TUNABLES")
                                         if name in os.environ}}


def describe_cpu(cpu: dict[str, Any], *, emulate_avx2: bool) -> str:
    flags = ", ".join(f"{flag} {'yes' if present else 'no'}" for flag, present in cpu["flags"].items())
    line = f"CPU: {cpu['processor']}; torch capability {cpu['torch_cpu_capability']}; flags: {flags}"
    if emulate_avx2:
        line += f" (in /proc/cpuinfo)\n{EMULATION_NOTE}"
    return line


# -- the parent -----------------------------------------------------------------------------------
def parse_arguments(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=1, help="rounds of (sentence-transformers, sentsim); medians")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="the unpacked stsbenchmark folder")
    parser.add_argument("--limit", type=int, default=None,
                        help="use only the first N train pairs and first N dev/test pairs (smoke tests)")
    parser.add_argument("--json", type=Path, default=None, help="also write all raw results here")
    parser.add_argument("--dtype", choices=("auto", "fp32", "bf16"), default="auto",
                        help="sentsim's training dtype (default: auto, bf16 where native); ST always trains in fp32")
    parser.add_argument("--emulate-avx2", action="store_true",
                        help="make both workers see an AVX2-only CPU through CPUID, so sentsim's auto trains in "
                             "fp32 (an emulation of a CPU without AVX-512 and native bf16, clearly labelled)")
    parser.add_argument("--worker", choices=MODES, help=argparse.SUPPRESS)
    parser.add_argument("--payload", type=Path, help=argparse.SUPPRESS)
    arguments = parser.parse_args(argv)
    if arguments.repeat < 1:
        parser.error("--repeat must be at least 1")
    if arguments.emulate_avx2 and arguments.dtype == "bf16":
        parser.error("--emulate-avx2 stands for a CPU without native bf16: use --dtype fp32 or auto")
    if arguments.limit is not None and arguments.limit < BATCH_SIZE:
        parser.error(f"--limit must be at least {BATCH_SIZE} (one batch)")
    return arguments


def main(argv: list[str] | None = None) -> None:
    arguments = parse_arguments(argv)
    if arguments.worker:
        worker_main(arguments.worker, arguments.payload, arguments.seed, arguments.dtype)
        return
    if arguments.emulate_avx2:
        os.environ.update(avx2_environment())  # inherited by every worker (run_worker passes os.environ on)
    payload = {"model": str(model_folder()),
               "splits": load_splits(arguments.data, ("train", "dev", "test"), arguments.limit)}
    train_pairs = len(payload["splits"]["train"]["scores"])
    print(f"training all-MiniLM-L6-v2 on {train_pairs} STSb train pairs: batch {BATCH_SIZE}, lr {LEARNING_RATE}, "
          f"warm-up {WARMUP_RATIO:.0%}, {EPOCHS} epoch, seed {arguments.seed}; {arguments.repeat} round(s)",
          flush=True)
    cpu = cpu_capability()
    print(describe_cpu(cpu, emulate_avx2=arguments.emulate_avx2), flush=True)
    load_at_start = warn_if_busy()
    script = Path(__file__).resolve()
    with payload_file(payload) as path:
        def run_one(mode: str, round_index: int) -> dict[str, Any]:
            return run_worker(script, ["--worker", mode, "--payload", str(path), "--seed", str(arguments.seed),
                                       "--dtype", arguments.dtype])

        results = run_alternating(MODES, arguments.repeat, run_one, report=print_run)
    medians = {mode: {key: median_of(results, mode, key)
                      for key in ("train_seconds", "pairs_per_second", "peak_rss_mb", "dev", "test")}
               for mode in MODES}
    print_summary(medians)
    if arguments.json is not None:
        write_json(arguments.json, {
            "benchmark": "train_speed",
            "settings": {"batch_size": BATCH_SIZE, "learning_rate": LEARNING_RATE, "warmup_ratio": WARMUP_RATIO,
                         "epochs": EPOCHS, "seed": arguments.seed, "repeat": arguments.repeat,
                         "limit": arguments.limit, "train_pairs": train_pairs, "data": str(arguments.data),
                         "sentsim_dtype": arguments.dtype, "emulate_avx2": arguments.emulate_avx2},
            "environment": environment_record(load_at_start), "cpu": cpu, "runs": results, "medians": medians,
        })


def print_run(result: dict[str, Any]) -> None:
    print(f"run {result['round']}  {NAMES[result['mode']]:<21}  train {result['train_seconds']:8.2f} s  "
          f"{result['pairs_per_second']:7.1f} pairs/s  peak RSS {result['peak_rss_mb']:7.0f} MB  "
          f"dev {result['dev']:6.2f}  test {result['test']:6.2f}  ({result['precision']}, "
          f"{result['torch_threads']} threads, {result['cpu_capability']})", flush=True)


def print_summary(medians: dict[str, dict[str, float]]) -> None:
    rows = [[NAMES[mode], f"{values['train_seconds']:.2f}", f"{values['pairs_per_second']:.1f}",
             f"{values['peak_rss_mb']:.0f}", f"{values['dev']:.2f}", f"{values['test']:.2f}"]
            for mode, values in medians.items()]
    print()
    print("medians")
    print(format_table(["library", "train s", "pairs/s", "peak RSS MB", "dev", "test"], rows))
    print()
    st, ours = medians["st"], medians["sentsim"]
    print(f"RSS ratio sentsim/ST: {ours['peak_rss_mb'] / st['peak_rss_mb']:.2f}×")
    print(f"test Spearman difference sentsim − ST: {ours['test'] - st['test']:+.2f}")
    print(f"throughput ratio sentsim/sentence-transformers: {ours['pairs_per_second'] / st['pairs_per_second']:.2f}×")


if __name__ == "__main__":
    main()
