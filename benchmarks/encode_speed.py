"""Encoding speed on CPU: sentsim vs sentence-transformers embedding the STSb test sentences.

The 2,758 test sentences (sentence1 of every pair, then sentence2; duplicates kept) are encoded with
batch size 32 by all-MiniLM-L6-v2 in three modes, each in its own fresh worker process, back to
back, ``--repeat`` times: ``st`` (sentence-transformers ``encode``), ``sentsim`` (sentsim's default
path, precision "auto") and ``sentsim-fp32``. Each worker first encodes ~64 sentences untimed to warm
up, then times one full encode, and scores its embeddings (test Spearman(cosine)×100) so a speed-up
that costs accuracy shows. Medians are reported.

    .venv/bin/python benchmarks/encode_speed.py --repeat 5 --json results/encode_speed.json
"""

from __future__ import annotations

import argparse
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

BATCH_SIZE = 32
WARMUP_SENTENCES = 64

MODES = ("st", "sentsim", "sentsim-fp32")
NAMES = {"st": "sentence-transformers", "sentsim": "sentsim", "sentsim-fp32": "sentsim (fp32)"}


# -- workers --------------------------------------------------------------------------------------
def load_encoder(mode: str, folder: str) -> tuple[Any, str]:
    """The mode's encode function (sentences → numpy matrix) and the precision it runs in."""
    if mode == "st":
        from sentence_transformers import SentenceTransformer

        st_model = SentenceTransformer(folder)

        def st_encode(sentences: list[str]) -> Any:
            return st_model.encode(sentences, batch_size=BATCH_SIZE, show_progress_bar=False)

        return st_encode, "fp32"

    from sentsim import SentenceTransformer as SentsimModel
    from sentsim.inference.forward import resolve_precision

    model = SentsimModel(folder)
    precision = "fp32" if mode == "sentsim-fp32" else "auto"

    def sentsim_encode(sentences: list[str]) -> Any:
        if precision == "auto":  # the default path: no precision argument at all
            return model.encode(sentences, batch_size=BATCH_SIZE)
        return model.encode(sentences, batch_size=BATCH_SIZE, dtype=precision)

    return sentsim_encode, resolve_precision(precision, model.device)


def worker_main(mode: str, payload_path: Path) -> None:
    """Warms up, times one full encode, scores it, then prints one JSON line (the only thing on stdout)."""
    payload = read_payload(payload_path)
    test = payload["splits"]["test"]
    sentences = test["sentences1"] + test["sentences2"]
    with stdout_to_stderr() as result_stream:
        import torch

        started = time.perf_counter()
        encode, precision = load_encoder(mode, payload["model"])
        load_seconds = time.perf_counter() - started
        encode(sentences[:WARMUP_SENTENCES])  # first-call costs (allocator, kernels, tokenizer) stay out
        started = time.perf_counter()
        embeddings = encode(sentences)
        encode_seconds = time.perf_counter() - started
        half = len(test["sentences1"])
        result = {
            "mode": mode, "sentences": len(sentences), "encode_seconds": encode_seconds,
            "sentences_per_second": len(sentences) / encode_seconds,
            "test": spearman_cosine(embeddings[:half], embeddings[half:], test["scores"]),
            "precision": precision, "load_seconds": load_seconds, "peak_rss_mb": peak_rss_mb(),
            "torch_threads": torch.get_num_threads(), "versions": library_versions(),
        }
    emit_result(result, result_stream)


# -- the parent -----------------------------------------------------------------------------------
def parse_arguments(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=1, help="rounds of the three modes; medians are reported")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="the unpacked stsbenchmark folder")
    parser.add_argument("--limit", type=int, default=None,
                        help="use only the first N test pairs, i.e. 2×N sentences (smoke tests)")
    parser.add_argument("--json", type=Path, default=None, help="also write all raw results here")
    parser.add_argument("--worker", choices=MODES, help=argparse.SUPPRESS)
    parser.add_argument("--payload", type=Path, help=argparse.SUPPRESS)
    arguments = parser.parse_args(argv)
    if arguments.repeat < 1:
        parser.error("--repeat must be at least 1")
    if arguments.limit is not None and arguments.limit < 2:
        parser.error("--limit must be at least 2 (Spearman needs two pairs)")
    return arguments


def main(argv: list[str] | None = None) -> None:
    arguments = parse_arguments(argv)
    if arguments.worker:
        worker_main(arguments.worker, arguments.payload)
        return
    payload = {"model": str(model_folder()), "splits": load_splits(arguments.data, ("test",), arguments.limit)}
    sentences = 2 * len(payload["splits"]["test"]["scores"])
    print(f"encoding {sentences} STSb test sentences with all-MiniLM-L6-v2, batch {BATCH_SIZE}; "
          f"{arguments.repeat} round(s)", flush=True)
    load_at_start = warn_if_busy()
    script = Path(__file__).resolve()
    with payload_file(payload) as path:
        def run_one(mode: str, round_index: int) -> dict[str, Any]:
            return run_worker(script, ["--worker", mode, "--payload", str(path)])

        results = run_alternating(MODES, arguments.repeat, run_one, report=print_run)
    medians = {mode: {key: median_of(results, mode, key)
                      for key in ("encode_seconds", "sentences_per_second", "peak_rss_mb", "test")}
               for mode in MODES}
    print_summary(medians)
    if arguments.json is not None:
        write_json(arguments.json, {
            "benchmark": "encode_speed",
            "settings": {"batch_size": BATCH_SIZE, "warmup_sentences": WARMUP_SENTENCES, "sentences": sentences,
                         "repeat": arguments.repeat, "limit": arguments.limit, "data": str(arguments.data)},
            "environment": environment_record(load_at_start), "runs": results, "medians": medians,
        })


def print_run(result: dict[str, Any]) -> None:
    print(f"run {result['round']}  {NAMES[result['mode']]:<21}  encode {result['encode_seconds']:7.2f} s  "
          f"{result['sentences_per_second']:7.1f} sentences/s  peak RSS {result['peak_rss_mb']:6.0f} MB  "
          f"test {result['test']:6.2f}  ({result['precision']}, {result['torch_threads']} threads)", flush=True)


def print_summary(medians: dict[str, dict[str, float]]) -> None:
    rows = [[NAMES[mode], f"{values['encode_seconds']:.2f}", f"{values['sentences_per_second']:.1f}",
             f"{values['peak_rss_mb']:.0f}", f"{values['test']:.2f}"]
            for mode, values in medians.items()]
    print()
    print("medians")
    print(format_table(["mode", "encode s", "sentences/s", "peak RSS MB", "test"], rows))
    print()
    st, default, fp32 = medians["st"], medians["sentsim"], medians["sentsim-fp32"]
    print(f"fp32 ratio sentsim-fp32/sentence-transformers: "
          f"{fp32['sentences_per_second'] / st['sentences_per_second']:.2f}×")
    print(f"Spearman drift of default vs fp32 (sentsim − sentsim-fp32): {default['test'] - fp32['test']:+.3f}")
    print(f"encode throughput ratio sentsim/sentence-transformers: "
          f"{default['sentences_per_second'] / st['sentences_per_second']:.2f}×")


if __name__ == "__main__":
    main()
