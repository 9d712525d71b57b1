"""Experiment (issue 14): per-step A/B of torch's CPU dropout masks against sentsim's hashed ones.

torch draws CPU dropout masks with ``bernoulli_``; in a torch profile of a bf16 classic-recipe step
of MiniLM on 2 Zen 4 cores it was 14 % of the step (19 masks, ~35 ms). This script's first version
carried its own hash (``lowbias32`` of each element's position plus a per-call seed from torch's
generator): 181.3 → 152.9 ms per bf16 step here, while whole classic epochs were too noisy to show
it. The library now has that hash, worked in place in cache-sized chunks
(``sentsim.training.dropout``, on by default), and this script compares it with torch's masks on
the same batches and weights, alternating step by step.

    .venv/bin/python experiments/hashed_dropout.py --dtype bf16 --steps 40

"""

from __future__ import annotations

import torch

from sentsim.training.dropout import fast_dropout as hashed_dropout_for


def main() -> None:
    """Per-step forward/backward/optimizer milliseconds with torch's and with hashed dropout, alternating."""
    import argparse
    import time
    from pathlib import Path

    from sentsim import SentenceTransformer
    from sentsim.data import read_stsbenchmark
    from sentsim.inference.forward import autocast_context
    from sentsim.losses import build_loss
    from sentsim.persistence.hub import bundled_model_path
    from sentsim.training.batching import LengthGroupedSampler, PairCollator, tokenize_pairs
    from sentsim.training.config import TrainConfig
    from sentsim.training.optimizer import build_optimizer

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--dtype", choices=("fp32", "bf16"), default="bf16")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data"
                        / "stsbenchmark")
    args = parser.parse_args()
    model = SentenceTransformer(bundled_model_path())
    model.train()
    train = read_stsbenchmark(args.data, "train")
    pairs = tokenize_pairs(model.token_ids, train.sentences1, train.sentences2, train.scores)
    collate = PairCollator(pairs, model.collate, pad_to_multiple_of=None)
    batches = list(LengthGroupedSampler(pairs.lengths, batch_size=16, seed=0))[: 2 * args.steps + 4]
    optimizer = build_optimizer(model, TrainConfig(batch_size=16), device=torch.device("cpu"))
    loss_fn = build_loss("cosine")
    totals = {"torch": 0.0, "hashed": 0.0}

    def step(indices: list[int]) -> float:
        started = time.perf_counter()
        features, labels = collate(indices)
        with autocast_context(args.dtype, torch.device("cpu")):
            embeddings = model(features)["sentence_embedding"]
        first, second = embeddings.float().chunk(2)
        loss_fn(first, second, labels.float()).backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return time.perf_counter() - started

    for warm in batches[:4]:
        step(warm)
    for number, indices in enumerate(batches[4:]):
        kind = ("torch", "hashed")[(number // 2 + number) % 2]  # alternate, and swap the order every pair
        if kind == "hashed":
            with hashed_dropout_for(model):
                totals[kind] += step(indices)
        else:
            totals[kind] += step(indices)
    for kind, seconds in totals.items():
        print(f"{kind} dropout: {1000 * seconds / args.steps:.1f} ms/step ({args.dtype}, {args.steps} steps)")


if __name__ == "__main__":
    main()
