"""Experiment (issue 14): a training step as two half-batches side by side, one core each.

The default step runs every operator of one forward + backward on both cores (torch's intra-op
OpenMP threads), so the cores meet at a barrier after each of the step's few hundred small operators.
The ONNX encoder gained 1.09-1.16x by running whole batches side by side instead, one single-threaded
session per core. Here the same idea for training: the classic batch (16 pairs, cosine loss, whose
MSE is a mean over pairs and so splits exactly) is cut into two halves of 8 pairs; two Python threads,
each with one intra-op thread, run forward + loss + backward of one half, and the gradients meet in
the parameters' ``.grad`` (torch's AccumulateGrad locks per parameter). The loss of each half is
its squared-error sum over the whole batch's pair count, so the summed gradients are the full
batch's.

Alternating per step, the same batches, no optimizer step (weights fixed): seconds per step for
``baseline`` (whole batch, 2 intra-op threads) and ``side_by_side``; with dropout off, the largest
gradient difference between the two (float summation order only).

    .venv/bin/python experiments/side_by_side_steps.py --batches 40 --rounds 2

2 cores of a real AMD EPYC Zen 3 (AVX2 only), fp32, alone, 2026-12-07: 0.957x (30 batches x 2
rounds; 0.465 against 0.445 s per step) and 1.072x on the mean but 1.026x on the median step (40 x 3;
the mean carries a few slow outliers); gradients equal to 3e-8 with dropout off. Each core's
single-threaded GEMMs run at 53-60 GFLOP/s against 85-118 for both cores on one product, so side by
side wins back little, and the two threads share the GIL for a forward's few hundred Python calls.
Not kept: a few per cent at most, where issue 14's fp32 bar needs ~16 %, and the library would also
need per-half dropout masks that stay deterministic.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import torch

from sentsim import SentenceTransformer
from sentsim.data import read_stsbenchmark
from sentsim.persistence.hub import bundled_model_path
from sentsim.training.batching import LengthGroupedSampler, tokenize_pairs

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "stsbenchmark"


def half_step(model: SentenceTransformer, tokenized: Any, rows: list[int], pairs_in_batch: int,
              threads: int | None) -> float:
    """Forward + loss + backward of ``rows``; the loss as its share of the whole batch's MSE."""
    if threads is not None:
        torch.set_num_threads(threads)  # OpenMP's thread count is per calling thread
    transformer = model[0]
    ids = [tokenized.ids_a[i] for i in rows] + [tokenized.ids_b[i] for i in rows]
    embeddings = model(transformer.collate(ids, pad_to_multiple_of=None))["sentence_embedding"]
    left, right = embeddings.chunk(2)
    cosine = torch.nn.functional.cosine_similarity(left, right)
    loss = ((cosine - tokenized.labels[rows].float()) ** 2).sum() / pairs_in_batch
    loss.backward()
    return float(loss.detach())


def gradients(model: SentenceTransformer) -> torch.Tensor:
    return torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batches", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=2)
    arguments = parser.parse_args(argv)

    pairs = read_stsbenchmark(DATA, "train")
    model = SentenceTransformer(str(bundled_model_path()))
    tokenized = tokenize_pairs(model.token_ids, pairs.sentences1, pairs.sentences2, pairs.scores)
    sampler = list(LengthGroupedSampler(tokenized.lengths, batch_size=16, seed=42, group_batches=64))
    chosen = [list(rows) for rows in sampler[:: max(1, len(sampler) // arguments.batches)][: arguments.batches]]
    threads = torch.get_num_threads()
    pool = ThreadPoolExecutor(max_workers=2)

    def baseline(rows: list[int]) -> None:
        half_step(model, tokenized, rows, len(rows), None)

    def side_by_side(rows: list[int]) -> None:
        middle = len(rows) // 2
        futures = [pool.submit(half_step, model, tokenized, part, len(rows), 1)
                   for part in (rows[:middle], rows[middle:])]
        for future in futures:
            future.result()

    modes = {"baseline": baseline, "side_by_side": side_by_side}

    model.eval()  # dropout off: the two modes must give the same gradients up to summation order
    gap = 0.0
    for rows in chosen[:5]:
        reference = None
        for call in modes.values():
            call(rows)
            grads = gradients(model)
            reference = grads if reference is None else reference
            gap = max(gap, float((grads - reference).abs().max()))
            model.zero_grad(set_to_none=True)

    model.train()
    seconds: dict[str, list[float]] = {name: [] for name in modes}
    for round_index in range(arguments.rounds):
        for index, rows in enumerate(chosen):
            order = list(modes) if (round_index + index) % 2 == 0 else list(modes)[::-1]
            for name in order:
                torch.set_num_threads(threads)
                started = time.perf_counter()
                modes[name](rows)
                seconds[name].append(time.perf_counter() - started)
                model.zero_grad(set_to_none=True)
    pool.shutdown()
    total = {name: sum(values) for name, values in seconds.items()}
    print(json.dumps({
        "cpu": torch.backends.cpu.get_cpu_capability(), "threads": threads, "batches": len(chosen),
        "rounds": arguments.rounds, "max_gradient_difference_dropout_off": gap,
        **{name: {"seconds_per_step": round(total[name] / len(values), 4),
                  "median_step": round(statistics.median(values), 4)} for name, values in seconds.items()},
        "speedup_side_by_side": round(total["baseline"] / total["side_by_side"], 3),
    }, indent=2))


if __name__ == "__main__":
    main()
