"""Peak memory of ``sentsim encode`` against the input size: streaming should make it flat.

Writes files of short lines (the STSb test sentences, cycled and numbered so none repeats) of each
``--lines`` size, runs ``python -m sentsim encode MODEL FILE -o OUT.npy`` on each in a fresh child
process with stderr redirected to a log (so the non-terminal progress lines are exercised), and
reports the child's peak RSS (``os.wait4``'s ``ru_maxrss``), wall time and lines per second, and the
ratio of the largest peak to the smallest. Acceptance (issue 10): 200,000 lines peak at no more than
1.2× the RSS of 20,000.

    nice -n 10 .venv/bin/python benchmarks/encode_memory.py --lines 20000 200000 \
        --json benchmarks/results/encode_memory.json
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

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO_ROOT.parent / "shared" / "data" / "stsbenchmark"


def _sentences(data: Path) -> list[str]:
    test = data / "sts-test.csv"
    if test.is_file():
        rows = [line.split("\t") for line in test.read_text(encoding="utf-8").split("\n") if line]
        return [row[5].strip() for row in rows if len(row) > 6 and row[5].strip()]
    return ["a man is playing a flute", "a dog is running in the park", "the red car is on the road"]


def _write_lines(path: Path, count: int, sentences: list[str]) -> None:
    with open(path, "w", encoding="utf-8") as handle:
        for index in range(count):
            handle.write(f"{sentences[index % len(sentences)]} ({index})\n")


def _encode(model: str, source: Path, output: Path, log: Path, extra: list[str]) -> dict[str, float]:
    command = [sys.executable, "-m", "sentsim", "encode", model, str(source), "-o", str(output), *extra]
    started = time.perf_counter()
    with open(log, "w", encoding="utf-8") as stderr:
        child = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=stderr,
                                 env={**os.environ, "TOKENIZERS_PARALLELISM": "false"})
        _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"encode failed:\n{log.read_text()}")
    with open(source, "rb") as handle:
        lines = sum(1 for _ in handle)
    return {"lines": lines, "peak_rss_mb": round(usage.ru_maxrss / 1024, 1), "wall_seconds": round(wall, 1),
            "lines_per_second": round(lines / wall, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=None, help="model folder (default: the bundled all-MiniLM-L6-v2)")
    parser.add_argument("--lines", type=int, nargs="+", default=[20_000, 200_000])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="STSb folder for the sentences")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("encode_options", nargs="*", help="passed on to sentsim encode (after --)")
    args = parser.parse_args()
    if args.model is None:
        from sentsim.persistence.hub import bundled_model_path

        args.model = str(bundled_model_path())
    sentences = _sentences(args.data)
    results = []
    with tempfile.TemporaryDirectory() as folder:
        for count in args.lines:
            source, log = Path(folder) / f"{count}.txt", Path(folder) / f"{count}.log"
            _write_lines(source, count, sentences)
            result = _encode(args.model, source, Path(folder) / f"{count}.npy", log, args.encode_options)
            progress = [line for line in log.read_text().splitlines() if line.startswith("encoding ")]
            result["progress_lines"] = len(progress)
            result["last_progress_line"] = progress[-1] if progress else None
            results.append(result)
            print(json.dumps(result), flush=True)
    ratio = results[-1]["peak_rss_mb"] / results[0]["peak_rss_mb"]
    summary = {"model": args.model, "runs": results, "peak_ratio_largest_to_smallest": round(ratio, 3),
               "cpu_count": os.cpu_count(), "load_average": os.getloadavg()}
    print(f"peak RSS {results[0]['lines']:,} lines: {results[0]['peak_rss_mb']} MB; {results[-1]['lines']:,} lines: "
          f"{results[-1]['peak_rss_mb']} MB; ratio {ratio:.3f}")
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
