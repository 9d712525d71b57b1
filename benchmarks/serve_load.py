"""Served throughput: `sentsim serve` vs infinity-emb under closed-loop load on loopback.

Both servers load the very same folder (the bundled all-MiniLM-L6-v2), one at a time, on the same
cores as this load generator. For each server and each level of concurrent clients (1, 8, 32, 128)
every client sends ``POST /v1/embeddings`` with 4 STSb test sentences, waits for the answer and
sends the next one, for a fixed time. Reported per level: sentences/s, latency p50/p95/p99, errors
by status, the server's peak RSS and the CPU time this load generator used (it shares the cores).
Then an overload phase against sentsim (far more clients than its queue admits; a client that gets
429 waits the Retry-After, capped at 1 s) must give only 200s and 429s, keep /health answering and
keep the peak RSS within 1.5× of the steady-state peak. Offline ``encode`` of the same backend on
the same sentences gives the 0.8× reference. The last line is the sentsim/infinity ratio at 32 clients.

infinity-emb runs from its own venv (benchmarks/.infinity-venv, created on first use: torch 2.13.0
CPU first, then infinity-emb 0.0.78 with the torch engine and server extras, no torchvision).

    nice -n 10 .venv/bin/python benchmarks/serve_load.py --seconds 20 --json benchmarks/results/serve_load.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

from _common import (
    DEFAULT_DATA,
    REPO_ROOT,
    WORKER_ENVIRONMENT,
    environment_record,
    format_table,
    model_folder,
    warn_if_busy,
    write_json,
)
from _http import Connection, ProtocolError

INFINITY_VENV = REPO_ROOT / "benchmarks" / ".infinity-venv"
INFINITY_PACKAGES = (["torch==2.13.0"], ["infinity-emb[server,torch]==0.0.78"])
MODEL_ID = "all-MiniLM-L6-v2"
SENTENCES_PER_REQUEST = 4
REQUEST_TIMEOUT = 60.0
MAX_REQUESTS_PER_CLIENT = 100_000  # a hard cap on top of the time limit


# -- servers -----------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def ensure_infinity_venv() -> Path:
    """The infinity-emb executable, installing its venv first if missing (torch first: CPU build)."""
    executable = INFINITY_VENV / "bin" / "infinity_emb"
    if not executable.is_file():
        print(f"creating {INFINITY_VENV} (one time) …", file=sys.stderr, flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(INFINITY_VENV)], check=True)
        for packages in INFINITY_PACKAGES:
            subprocess.run([str(INFINITY_VENV / "bin" / "pip"), "install", "-q", *packages], check=True)
    check = "import infinity_emb, torch, importlib.util as u; assert u.find_spec('torchvision') is None"
    subprocess.run([str(INFINITY_VENV / "bin" / "python"), "-c", check], check=True)
    return executable


def server_command(name: str, folder: Path, port: int, backend: str) -> tuple[list[str], str]:
    """The command line that starts a server, and the URL prefix of its OpenAI routes."""
    if name == "sentsim":
        return [sys.executable, "-m", "sentsim", "serve", str(folder), "--port", str(port), "--backend", backend,
                "--log-level", "warning"], "/v1"
    return [str(ensure_infinity_venv()), "v2", "--model-id", str(folder), "--served-model-name", MODEL_ID,
            "--engine", "torch", "--device", "cpu", "--batch-size", "32", "--host", "127.0.0.1", "--port", str(port),
            "--url-prefix", "/v1", "--log-level", "warning"], "/v1"


class RssSampler:
    """Samples a process's resident memory (VmRSS, children included) every 50 ms; peak per phase."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak_kib = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            self.peak_kib = max(self.peak_kib, _tree_rss_kib(self.pid))

    def take_peak_mb(self) -> float:
        """The peak since the last call, in MiB; starts the next phase's count."""
        peak, self.peak_kib = self.peak_kib, _tree_rss_kib(self.pid)
        return round(peak / 1024, 1)

    def stop(self) -> None:
        self._stop.set()


def _tree_rss_kib(pid: int) -> int:
    total = 0
    for process in [pid, *_children(pid)]:
        try:
            for line in Path(f"/proc/{process}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except (OSError, ValueError):
            continue
    return total


def _children(pid: int) -> list[int]:
    try:
        found = [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []
    return found + [grandchild for child in found for grandchild in _children(child)]


def wait_until_serving(url: str, process: subprocess.Popen, timeout: float = 300.0) -> float:
    """Seconds until ``GET {url}/models`` answers 200 (both servers answer it once the model is in)."""
    import httpx

    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if process.poll() is not None:
            sys.exit(f"the server exited with status {process.returncode} before it was ready")
        try:
            if httpx.get(f"{url}/models", timeout=5).status_code == 200:
                return time.monotonic() - started
        except httpx.TransportError:
            pass
        time.sleep(0.25)
    sys.exit(f"the server at {url} was not ready after {timeout:.0f} s")


def stop_server(process: subprocess.Popen) -> int | None:
    """SIGTERM, then wait; a server that does not stop in 60 s is killed (and reported as such)."""
    process.send_signal(signal.SIGTERM)
    try:
        return process.wait(60)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        return None


# -- load ----------------------------------------------------------------------------------------
async def closed_loop(url: str, model: str, sentences: list[str], clients: int, seconds: float, *,
                      back_off_on_429: bool = False) -> dict[str, Any]:
    """``clients`` concurrent loops, each one request at a time, for ``seconds``; counts what finished in time.

    Each client holds one keep-alive connection (``_http.Connection``: far less CPU per request than
    httpx, which matters because this process shares the server's cores).
    """
    port, path = _port_and_path(url)
    statuses: Counter[str] = Counter()
    latencies: list[float] = []
    cpu_before = _own_cpu_seconds()
    deadline = time.perf_counter() + seconds

    async def one_client(number: int) -> None:
        connection = Connection(port, timeout=REQUEST_TIMEOUT)
        offset = (number * 997) % len(sentences)
        try:
            for request in range(MAX_REQUESTS_PER_CLIENT):
                if time.perf_counter() >= deadline:
                    return
                start = (offset + request * SENTENCES_PER_REQUEST) % (len(sentences) - SENTENCES_PER_REQUEST)
                body = {"input": sentences[start : start + SENTENCES_PER_REQUEST], "model": model,
                        "encoding_format": "float"}
                sent = time.perf_counter()
                try:
                    answer = await connection.post_json(f"{path}/embeddings", body)
                    status = str(answer.status)
                except (TimeoutError, OSError, asyncio.IncompleteReadError, ProtocolError) as error:
                    answer, status = None, type(error).__name__
                done = time.perf_counter()
                if done > deadline:
                    return  # finished after the window: neither counted nor timed
                statuses[status] += 1
                if status == "200":
                    latencies.append(done - sent)
                elif status == "429" and back_off_on_429 and answer is not None:
                    await asyncio.sleep(min(1.0, float(answer.headers.get("retry-after", "1"))))
        finally:
            await connection.close()

    started = time.perf_counter()
    await asyncio.gather(*(one_client(number) for number in range(clients)))
    elapsed = max(seconds, time.perf_counter() - started)
    return {"clients": clients, "seconds": round(elapsed, 2),
            "sentences_per_s": round(statuses["200"] * SENTENCES_PER_REQUEST / seconds, 1),
            **_percentiles(latencies), "statuses": dict(statuses),
            "load_generator_cpu_s": round(_own_cpu_seconds() - cpu_before, 2)}


def _port_and_path(url: str) -> tuple[int, str]:
    """``http://127.0.0.1:PORT/prefix`` → (PORT, "/prefix"); anything but loopback is refused."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    if parts.hostname != "127.0.0.1" or parts.port is None:
        sys.exit(f"the load generator only targets 127.0.0.1:PORT, not {url}")
    return parts.port, parts.path.rstrip("/")


def run_load(coroutine: Any) -> Any:
    """Runs the load on uvloop when it is installed (less CPU per request), else on asyncio's loop."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coroutine)
    return uvloop.run(coroutine)


def _own_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _percentiles(latencies: list[float]) -> dict[str, float | None]:
    if not latencies:
        return {"p50_ms": None, "p95_ms": None, "p99_ms": None}
    ordered = sorted(latencies)

    def at(fraction: float) -> float:
        return round(1000 * ordered[min(len(ordered) - 1, int(fraction * len(ordered)))], 1)

    return {"p50_ms": at(0.50), "p95_ms": at(0.95), "p99_ms": at(0.99)}


def measure_server(name: str, folder: Path, sentences: list[str], args: argparse.Namespace) -> dict[str, Any]:
    import httpx

    port = free_port()
    command, prefix = server_command(name, folder, port, args.backend)
    environment = {**os.environ, **WORKER_ENVIRONMENT, "SENTSIM_API_KEY": ""}
    process = subprocess.Popen(command, env=environment, stdout=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}{prefix}"
    sampler = RssSampler(process.pid)
    result: dict[str, Any] = {"server": name}
    try:
        ready_s = wait_until_serving(url, process)
        model = httpx.get(f"{url}/models", timeout=10).json()["data"][0]["id"]  # each server names it its way
        print(f"{name}: ready after {ready_s:.1f} s, serving {model!r}", file=sys.stderr, flush=True)
        run_load(closed_loop(url, model, sentences, 8, args.warmup))
        sampler.take_peak_mb()
        levels = []
        for clients in args.clients:
            level = run_load(closed_loop(url, model, sentences, clients, args.seconds))
            level["server_peak_rss_mb"] = sampler.take_peak_mb()
            print(f"{name}: {json.dumps(level)}", file=sys.stderr, flush=True)
            levels.append(level)
        result.update(ready_s=round(ready_s, 1), levels=levels)
        if name == "sentsim" and args.overload_clients:
            result["overload"] = overload_phase(url, port, model, sentences, sampler, levels, args)
    finally:
        sampler.stop()
        result["exit_status_after_sigterm"] = stop_server(process)
    return result


def overload_phase(url: str, port: int, model: str, sentences: list[str], sampler: RssSampler,
                   levels: list[dict[str, Any]], args: argparse.Namespace) -> dict[str, Any]:
    import httpx

    overload = run_load(closed_loop(url, model, sentences, args.overload_clients, args.seconds,
                                       back_off_on_429=True))
    overload["server_peak_rss_mb"] = sampler.take_peak_mb()
    steady_peak = max(level["server_peak_rss_mb"] for level in levels)
    overload["rss_vs_steady_peak"] = round(overload["server_peak_rss_mb"] / steady_peak, 2)
    overload["health_after"] = httpx.get(f"http://127.0.0.1:{port}/health", timeout=10).status_code
    overload["only_200_and_429"] = set(overload["statuses"]) <= {"200", "429"}
    print(f"overload: {json.dumps(overload)}", file=sys.stderr, flush=True)
    return overload


# -- offline reference ------------------------------------------------------------------------------
OFFLINE_WORKER = """
import json, sys, time
from sentsim import SentenceTransformer
from sentsim.inference.encode import encode
sentences = json.load(open(sys.argv[1]))
backend = sys.argv[3]
model = SentenceTransformer(sys.argv[2], backend=backend) if backend != "torch" else SentenceTransformer(sys.argv[2])
run = (lambda texts: model.encode(texts, batch_size=32)) if backend != "torch" else \\
      (lambda texts: encode(model, texts, batch_size=32, show_progress=False))
run(sentences[:64])
rates = []
for _ in range(int(sys.argv[4])):
    started = time.perf_counter()
    run(sentences)
    rates.append(round(len(sentences) / (time.perf_counter() - started), 1))
print(json.dumps({"sentences_per_s": sorted(rates)[len(rates) // 2], "passes": rates}))
"""


def offline_throughput(folder: Path, sentences: list[str], backend: str, passes: int) -> dict[str, Any]:
    """``encode`` of the same sentences, batch 32, in a fresh process after a short warm-up: the median
    of ``passes`` passes (one pass is ~2 s, and single passes on this kind of VM vary by ±20 %)."""
    import tempfile

    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as handle:
        json.dump(sentences, handle)
    try:
        completed = subprocess.run([sys.executable, "-c", OFFLINE_WORKER, handle.name, str(folder), backend,
                                    str(passes)],
                                   env={**os.environ, **WORKER_ENVIRONMENT}, capture_output=True, text=True,
                                   check=True)
    finally:
        os.unlink(handle.name)
    return json.loads(completed.stdout.strip().splitlines()[-1])


# -- report -------------------------------------------------------------------------------------
def print_report(results: list[dict[str, Any]], offline: float) -> None:
    rows = []
    for result in results:
        for level in result["levels"] + ([result["overload"]] if "overload" in result else []):
            errors = {status: count for status, count in level["statuses"].items() if status != "200"}
            rows.append([result["server"], str(level["clients"]), f"{level['sentences_per_s']:.0f}",
                         *(f"{level[key]:.0f}" if level[key] is not None else "–"
                           for key in ("p50_ms", "p95_ms", "p99_ms")),
                         json.dumps(errors) if errors else "none", f"{level['server_peak_rss_mb']:.0f}",
                         f"{level['load_generator_cpu_s']:.1f}"])
    print(format_table(["server", "clients", "sentences/s", "p50 ms", "p95 ms", "p99 ms", "errors",
                        "server peak RSS MiB", "load-gen CPU s"], rows))
    by_server = {result["server"]: {level["clients"]: level for level in result["levels"]} for result in results}
    sentsim_32 = by_server.get("sentsim", {}).get(32)
    if sentsim_32:
        print(f"offline encode (same backend, batch 32, median pass before and after): {offline:.0f} sentences/s; "
              f"served at 32 clients: "
              f"{sentsim_32['sentences_per_s']:.0f} = {sentsim_32['sentences_per_s'] / offline:.2f}× offline")
    if "overload" in results[0]:
        overload = results[0]["overload"]
        print(f"overload ({overload['clients']} clients): statuses {overload['statuses']}, /health after: "
              f"{overload['health_after']}, peak RSS {overload['rss_vs_steady_peak']:.2f}× steady-state peak")
    infinity_32 = by_server.get("infinity", {}).get(32)
    if sentsim_32 and infinity_32 and infinity_32["sentences_per_s"] > 0:
        ratio = sentsim_32["sentences_per_s"] / infinity_32["sentences_per_s"]
        print(f"serve throughput ratio sentsim/infinity at 32 clients: {ratio:.2f}×")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="duration of each load level")
    parser.add_argument("--warmup", type=float, default=5.0, help="untimed load before the first level")
    parser.add_argument("--clients", type=lambda text: [int(part) for part in text.split(",")], default=[1, 8, 32, 128])
    parser.add_argument("--overload-clients", type=int, default=768,
                        help="clients in the overload phase (sentsim's queue admits 256 requests); 0 skips it")
    parser.add_argument("--offline-passes", type=int, default=5,
                        help="offline encode passes before and again after sentsim's server (median of all)")
    parser.add_argument("--backend", choices=("torch", "onnx"), default="torch", help="sentsim's backend")
    parser.add_argument("--model", type=Path, default=None, help="model folder (default: the bundled MiniLM)")
    parser.add_argument("--skip-infinity", action="store_true")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--json", type=Path, default=None, help="also write all figures here")
    args = parser.parse_args()
    from sentsim.data import read_stsbenchmark

    load = warn_if_busy()
    test = read_stsbenchmark(args.data, "test")
    sentences = [*test.sentences1, *test.sentences2]
    folder = args.model or model_folder()
    started = time.monotonic()
    # The offline reference is measured right before and right after sentsim's server, and the median
    # of all those passes is taken, so a drift of the machine's speed during the run (this kind of VM
    # drifts by ±20 %) does not favour either side of the ratio.
    passes = offline_throughput(folder, sentences, args.backend, args.offline_passes)["passes"]
    print(f"offline encode before the server: {passes} sentences/s", file=sys.stderr, flush=True)
    results = [measure_server("sentsim", folder, sentences, args)]
    after = offline_throughput(folder, sentences, args.backend, args.offline_passes)["passes"]
    print(f"offline encode after the server: {after} sentences/s", file=sys.stderr, flush=True)
    passes = [*passes, *after]
    offline = statistics.median(passes)
    measured = {"passes": passes}
    if not args.skip_infinity:
        results.append(measure_server("infinity", folder, sentences, args))
    if args.json:
        write_json(args.json, {"environment": environment_record(load), "offline_sentences_per_s": offline,
                               "offline_passes": measured["passes"],
                               "results": results, "wall_s": round(time.monotonic() - started, 1),
                               "options": {key: str(value) for key, value in vars(args).items()}})
    print(f"(whole run: {time.monotonic() - started:.0f} s)")
    print_report(results, offline)


if __name__ == "__main__":
    main()
