"""Experiment (issue 12): the ONNX encoder's batches side by side, one core each, against one at a time.

Before, the encoder ran every batch in turn on a session with one intra-op thread per core; now
(``sentsim.inference.parallel_runs``) several batches run at once on a single-threaded session.
This runs both on the same export and the same sentences in one process, alternating round by
round, checks they give the same embeddings bit for bit, and prints the rates and the per-round
ratios.

    .venv/bin/python experiments/onnx_side_by_side.py --model DIR --rounds 12

``DIR`` is a ``sentsim export --quantize int8`` folder (the encode benchmark caches one under
``benchmarks/results/encode-speed-models/sentsim-onnx``). 2 no-bf16 Intel Xeon cores with VNNI,
int8 VNNI file, STSb test (2,758 sentences), 2026-12-03, 12 rounds: 1,128 → 1,260 sentences/s
(medians); per round 1.01–1.29×, median 1.085×, never slower. Half an hour later, the VM slower:
884 → 1,029 sentences/s, per round 0.95–1.56×, median 1.16×.
"""

from __future__ import annotations

import argparse
import csv
import statistics
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from sentsim.inference.batches import length_sorted_batches
from sentsim.inference.onnx_backend import OnnxSentenceEncoder


def one_at_a_time(encoder: OnnxSentenceEncoder) -> OnnxSentenceEncoder:
    """``encoder`` made to run as before: every batch in order, on the session with intra-op threads."""
    session = encoder._lone()

    def runs(ids: Sequence[Sequence[int]], *, batch_size: int, show_progress: bool | None,
             run_overhead: int | None = None) -> Iterator[tuple[list[int], Any]]:
        for batch in length_sorted_batches([len(row) for row in ids], batch_size, run_overhead=run_overhead):
            yield batch, encoder._forward([ids[index] for index in batch], session=session)

    encoder._runs = runs  # type: ignore[method-assign]
    return encoder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=Path("benchmarks/results/encode-speed-models/sentsim-onnx"))
    parser.add_argument("--data", type=Path, default=Path("../shared/data/stsbenchmark"))
    parser.add_argument("--rounds", type=int, default=12)
    parser.add_argument("--batch-size", type=int, default=32)
    arguments = parser.parse_args()
    with (arguments.data / "sts-test.csv").open(encoding="utf-8") as handle:
        rows = list(csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE))
    sentences = [row[5] for row in rows] + [row[6] for row in rows]
    after = OnnxSentenceEncoder(arguments.model)
    before = one_at_a_time(OnnxSentenceEncoder(arguments.model))
    print(f"{after.describe()}, {after.threads} threads, {len(sentences)} sentences, batch {arguments.batch_size}")
    same = np.array_equal(after.encode(sentences, batch_size=arguments.batch_size),
                          before.encode(sentences, batch_size=arguments.batch_size))
    print(f"bit-identical embeddings: {same}")
    rates: dict[str, list[float]] = {"one at a time": [], "side by side": []}
    encoders = {"one at a time": before, "side by side": after}
    for round_index in range(arguments.rounds):
        names = list(encoders) if round_index % 2 == 0 else list(encoders)[::-1]
        for name in names:
            started = time.perf_counter()
            encoders[name].encode(sentences, batch_size=arguments.batch_size)
            rates[name].append(len(sentences) / (time.perf_counter() - started))
    for name, values in rates.items():
        print(f"{name:14s} median {statistics.median(values):7.1f} sentences/s  rounds {[round(v) for v in values]}")
    ratios = [new / old for new, old in zip(rates["side by side"], rates["one at a time"], strict=True)]
    print(f"per-round ratio side by side / one at a time: median {statistics.median(ratios):.3f}, "
          f"range {min(ratios):.3f}–{max(ratios):.3f}")


if __name__ == "__main__":
    main()
