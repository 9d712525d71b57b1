"""The accuracy study behind sentsim's default recipe (see docs/results.md for the selection rule).

Stages, each resumable (finished runs are skipped):

    python experiments/accuracy_study.py screen      # every configuration once, seed 42, no test
    python experiments/accuracy_study.py finalists   # the top 3 by S again with seeds 43 and 44
    python experiments/accuracy_study.py summary     # tables for docs/results.md
    python experiments/accuracy_study.py final --recipe default   # test, read once, 3 seeds
    python experiments/accuracy_study.py cv          # round 3: 3-fold CV over train + dev, per loss

Every run is a plain ``sentsim train`` subprocess, so what is measured is what users run.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data" / "stsbenchmark"
OUT = REPO / "runs" / "study"
RESULTS = OUT / "results.jsonl"
SENTSIM = [sys.executable, "-m", "sentsim.cli"]
FINALIST_SEEDS = (43, 44)

# name → (loss, learning rate, batch size, epochs). Ordered by expected promise so an interrupted
# study still has the informative runs.
CONFIGS: dict[str, tuple[str, float, int, int]] = {
    "classic": ("cosine", 2e-5, 16, 1),
    "cosine-bs16-lr2e-5": ("cosine", 2e-5, 16, 4),
    "cosine-bs64-lr1e-4": ("cosine", 1e-4, 64, 4),
    "cosent-bs64-lr1e-4": ("cosent", 1e-4, 64, 4),
    "cosine+cosent-bs64-lr1e-4": ("cosine+cosent", 1e-4, 64, 4),
    "cosine-bs16-lr5e-5": ("cosine", 5e-5, 16, 4),
    "cosine-bs64-lr5e-5": ("cosine", 5e-5, 64, 4),
    "cosent-bs64-lr5e-5": ("cosent", 5e-5, 64, 4),
    "angle-bs64-lr1e-4": ("angle", 1e-4, 64, 4),
    "cosine+cosent-bs64-lr5e-5": ("cosine+cosent", 5e-5, 64, 4),
    "cosine-bs64-lr2e-5": ("cosine", 2e-5, 64, 4),
    "cosent-bs64-lr2e-5": ("cosent", 2e-5, 64, 4),
    "angle-bs64-lr5e-5": ("angle", 5e-5, 64, 4),
    "angle-bs64-lr2e-5": ("angle", 2e-5, 64, 4),
    "cosine-bs16-lr1e-4": ("cosine", 1e-4, 16, 4),
    "cosent-bs16-lr2e-5": ("cosent", 2e-5, 16, 4),
    "cosent-bs16-lr5e-5": ("cosent", 5e-5, 16, 4),
    "cosent-bs16-lr1e-4": ("cosent", 1e-4, 16, 4),
    "angle-bs16-lr2e-5": ("angle", 2e-5, 16, 4),
    "angle-bs16-lr5e-5": ("angle", 5e-5, 16, 4),
    "angle-bs16-lr1e-4": ("angle", 1e-4, 16, 4),
    # Round 2 (docs/results.md): a small CoSENT term beside the cosine MSE.
    "cosine+0.003cosent-bs64-lr5e-5": ("cosine+0.003*cosent", 5e-5, 64, 4),
    "cosine+0.01cosent-bs64-lr5e-5": ("cosine+0.01*cosent", 5e-5, 64, 4),
    "cosine+0.001cosent-bs64-lr5e-5": ("cosine+0.001*cosent", 5e-5, 64, 4),
}
ROUND2 = [name for name in CONFIGS if "*" in CONFIGS[name][0]]


# Round 3 (docs/results.md): each loss at its best batch-64 setting of round 1, by 3-fold CV.
CV_CANDIDATES: dict[str, tuple[str, float, int, int]] = {
    "cosine-bs64-lr5e-5": ("cosine", 5e-5, 64, 4),
    "cosent-bs64-lr1e-4": ("cosent", 1e-4, 64, 4),
    "angle-bs64-lr1e-4": ("angle", 1e-4, 64, 4),
}
CV_FOLDS = 3
CV_RESULTS = OUT / "cv.jsonl"


def train_command(name: str, seed: int, output: Path, *, test: bool = False) -> list[str]:
    loss, lr, batch, epochs = CONFIGS[name]
    command = [*SENTSIM, "train", "--data", str(DATA), "--output", str(output), "--recipe", "classic",
               "--loss", loss, "--lr", str(lr), "--batch-size", str(batch), "--epochs", str(epochs),
               "--seed", str(seed), "--quiet", "--json"]
    return command if test else [*command, "--no-test"]


def score_run(folder: Path) -> dict[str, Any]:
    """S at the kept checkpoint (the first best dev Spearman, as the training loop keeps it)."""
    evals = [record for record in map(json.loads, (folder / "metrics.jsonl").read_text().splitlines())
             if record["kind"] == "eval"]
    base, trained = evals[0], evals[1:]
    best = max(trained, key=lambda record: record["spearman_cosine"])
    best = next(record for record in trained if record["spearman_cosine"] == best["spearman_cosine"])
    genres = {key.removeprefix("spearman_cosine_"): value for key, value in best.items()
              if key.startswith("spearman_cosine_")}
    worst = min(genres, key=genres.get)
    guard = all(value >= base.get(f"spearman_cosine_{genre}", float("-inf")) for genre, value in genres.items())
    summary = json.loads((folder / "summary.json").read_text())
    return {
        "best_epoch": best["epoch"], "dev": best["spearman_cosine"], "genres": genres, "worst_genre": worst,
        "S": 0.5 * best["spearman_cosine"] + 0.5 * genres[worst], "guard": guard,
        "per_epoch": [{"epoch": record["epoch"], "dev": record["spearman_cosine"],
                       **{g: record.get(f"spearman_cosine_{g}") for g in genres}} for record in trained],
        "train_seconds": summary["timing"]["train_seconds"],
    }


def done() -> dict[tuple[str, int], dict[str, Any]]:
    if not RESULTS.is_file():
        return {}
    rows = [json.loads(line) for line in RESULTS.read_text().splitlines() if line.strip()]
    return {(row["name"], row["seed"]): row for row in rows}


def run(name: str, seed: int) -> dict[str, Any]:
    output = OUT / name / f"seed-{seed}"
    subprocess.run(train_command(name, seed, output), check=True, cwd=REPO, stdout=subprocess.DEVNULL)
    row = {"name": name, "seed": seed, "config": dict(zip(("loss", "lr", "batch_size", "epochs"), CONFIGS[name],
                                                         strict=True)), **score_run(output)}
    OUT.mkdir(parents=True, exist_ok=True)
    with open(RESULTS, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(row) + "\n")
    print(f"{name} seed {seed}: S {row['S']:.2f}  dev {row['dev']:.2f}  worst {row['worst_genre']} "
          f"{row['genres'][row['worst_genre']]:.2f}  epoch {row['best_epoch']}  guard {row['guard']}  "
          f"{row['train_seconds']:.0f} s", flush=True)
    return row


def ranked_screen() -> list[dict[str, Any]]:
    rows = [row for (name, seed), row in done().items() if seed == 42]
    return sorted(rows, key=lambda row: (row["guard"], row["S"]), reverse=True)


def finalists() -> list[str]:
    return [row["name"] for row in ranked_screen() if row["guard"] and row["name"] != "classic"][:3]


def summary() -> None:
    results = done()
    print("| configuration | loss | lr | batch | kept epoch | dev | worst dev genre | S | guard | train s |")
    print("| --- | --- | ---: | ---: | ---: | ---: | --- | ---: | :---: | ---: |")
    for row in ranked_screen():
        config, worst = row["config"], row["worst_genre"]
        print(f"| {row['name']} | {config['loss']} | {config['lr']:g} | {config['batch_size']} | "
              f"{row['best_epoch']:g} | {row['dev']:.2f} | {worst} {row['genres'][worst]:.2f} | "
              f"{row['S']:.2f} | {'ok' if row['guard'] else 'out'} | {row['train_seconds']:.0f} |")
    print()
    print("| finalist | seeds | mean S ± std | mean dev ± std | train s (mean) |")
    print("| --- | --- | ---: | ---: | ---: |")
    for name in finalists():
        rows = [results[(name, seed)] for seed in (42, *FINALIST_SEEDS) if (name, seed) in results]
        if len(rows) < 2:
            continue
        s_values = [row["S"] for row in rows]
        dev_values = [row["dev"] for row in rows]
        print(f"| {name} | {len(rows)} | {statistics.mean(s_values):.2f} ± {statistics.stdev(s_values):.2f} | "
              f"{statistics.mean(dev_values):.2f} ± {statistics.stdev(dev_values):.2f} | "
              f"{statistics.mean(row['train_seconds'] for row in rows):.0f} |")


def cv_folds() -> list[Any]:
    """STSb train + dev in CV_FOLDS folds with the same genre mix (each genre shuffled, dealt in turn)."""
    import numpy as np

    from sentsim.data import PairDataset, genre_name, load_pairs

    pooled = [*load_pairs(str(DATA), split="train"), *load_pairs(str(DATA), split="dev")]
    folds: list[list[Any]] = [[] for _ in range(CV_FOLDS)]
    for genre in sorted({genre_name(pair.genre) for pair in pooled}):
        members = [pair for pair in pooled if genre_name(pair.genre) == genre]
        for position, index in enumerate(np.random.default_rng(0).permutation(len(members))):
            folds[position % CV_FOLDS].append(members[index])
    return [PairDataset(pairs=fold, source=f"STSb train+dev fold {number}") for number, fold in enumerate(folds)]


def cv_run(name: str, fold: int, folds: list[Any]) -> dict[str, Any]:
    """Trains on the other folds, scoring the held-out fold after every epoch (and the base model)."""
    import time

    from sentsim import SentenceTransformer
    from sentsim.data import PairDataset
    from sentsim.evaluation.evaluate import EmbeddingSimilarityEvaluator
    from sentsim.training import TrainConfig, train

    loss, lr, batch, epochs = CV_CANDIDATES[name]
    training = PairDataset(pairs=[pair for number, other in enumerate(folds) if number != fold for pair in other],
                           source="cv train")
    config = TrainConfig(loss=loss, learning_rate=lr, batch_size=batch, epochs=epochs, warmup_ratio=0.1,
                         weight_decay=0.01, seed=42)
    started = time.perf_counter()
    result = train(SentenceTransformer(), sentences_a=training.sentences1, sentences_b=training.sentences2,
                   labels=training.scores, config=config, evaluator=EmbeddingSimilarityEvaluator(dataset=folds[fold]),
                   quiet=True, keep_best=False)
    evals = [record for record in result.records if record["kind"] == "eval"]
    row = {"name": name, "fold": fold, "train_pairs": len(training), "held_out_pairs": len(folds[fold]),
           "evals": [{key: value for key, value in record.items() if key.startswith("spearman_cosine")}
                     | {"epoch": record["epoch"]} for record in evals],
           "train_seconds": result.train_seconds, "wall_seconds": time.perf_counter() - started}
    with open(CV_RESULTS, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(row) + "\n")
    last = row["evals"][-1]
    print(f"{name} fold {fold}: held-out Spearman by epoch "
          + " / ".join(f"{record['spearman_cosine']:.2f}" for record in row["evals"][1:])
          + f" (base {row['evals'][0]['spearman_cosine']:.2f}); last genres "
          + ", ".join(f"{key.removeprefix('spearman_cosine_')} {value:.2f}" for key, value in last.items()
                      if key.startswith("spearman_cosine_"))
          + f"; {result.train_seconds:.0f} s", flush=True)
    return row


def cv_summary() -> None:
    """Per candidate and epoch: fold-averaged S and genres, the guard, and each candidate's CV score."""
    if not CV_RESULTS.is_file():
        print("no CV results yet")
        return
    rows = [json.loads(line) for line in CV_RESULTS.read_text().splitlines() if line.strip()]
    print("| candidate | epoch | mean held-out | " + " | ".join(f"mean {g}" for g in ("captions", "forum", "news"))
          + " | S | guard |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | :---: |")
    scores = {}
    for name in CV_CANDIDATES:
        mine = sorted((row for row in rows if row["name"] == name), key=lambda row: row["fold"])
        if len(mine) < CV_FOLDS:
            continue
        base = {key: statistics.mean(row["evals"][0][key] for row in mine) for key in mine[0]["evals"][0]
                if key.startswith("spearman_cosine_")}
        best = None
        for index in range(1, len(mine[0]["evals"])):
            per_fold_s = []
            for row in mine:
                record = row["evals"][index]
                genres = [value for key, value in record.items() if key.startswith("spearman_cosine_")]
                per_fold_s.append(0.5 * record["spearman_cosine"] + 0.5 * min(genres))
            means = {key: statistics.mean(row["evals"][index][key] for row in mine) for key in base}
            overall = statistics.mean(row["evals"][index]["spearman_cosine"] for row in mine)
            s_value = statistics.mean(per_fold_s)
            guard = all(means[key] >= base[key] for key in base)
            if guard and (best is None or s_value > best[1]):
                best = (index, s_value)
            print(f"| {name} | {index} | {overall:.2f} | "
                  + " | ".join(f"{means.get('spearman_cosine_' + genre, float('nan')):.2f}"
                               for genre in ("captions", "forum", "news"))
                  + f" | {s_value:.2f} | {'ok' if guard else 'out'} |")
        scores[name] = best
    print()
    print("base model, fold-averaged genres: " + ", ".join(
        f"{key.removeprefix('spearman_cosine_')} {value:.2f}" for key, value in base.items()))
    for name, best in scores.items():
        print(f"CV score {name}: " + (f"S {best[1]:.2f} at epoch {best[0]}" if best else "no epoch passes the guard"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("stage", choices=("screen", "finalists", "summary", "final", "cv", "cv-summary"))
    parser.add_argument("--only", nargs="*", help="screen only these configurations")
    parser.add_argument("--recipe", action="append", help="final: recipes to test (default: default, classic)")
    args = parser.parse_args()
    if args.stage == "screen":
        for name in args.only or CONFIGS:
            if (name, 42) not in done():
                run(name, 42)
    elif args.stage == "finalists":
        for name in finalists():
            for seed in FINALIST_SEEDS:
                if (name, seed) not in done():
                    run(name, seed)
    elif args.stage == "summary":
        summary()
    elif args.stage == "cv":
        folds = cv_folds()
        finished = {(row["name"], row["fold"]) for row in map(json.loads, CV_RESULTS.read_text().splitlines())} \
            if CV_RESULTS.is_file() else set()
        for name in CV_CANDIDATES:
            for fold in range(CV_FOLDS):
                if (name, fold) not in finished:
                    cv_run(name, fold, folds)
        cv_summary()
    elif args.stage == "cv-summary":
        cv_summary()
    else:
        recipes = args.recipe or ["default", "classic"]
        for recipe in recipes:
            subprocess.run([*SENTSIM, "train", "--data", str(DATA), "--recipe", recipe, "--seeds", "3",
                            "--output", str(REPO / "runs" / "final" / recipe), "--quiet"], check=True, cwd=REPO)
        if len(recipes) == 2:
            models = [str(REPO / "runs" / "final" / recipe / "seed-42" / "model") for recipe in recipes]
            subprocess.run([*SENTSIM, "compare", *models, "--data", str(DATA), "--split", "test", "--quiet"],
                           check=True, cwd=REPO)


if __name__ == "__main__":
    main()
