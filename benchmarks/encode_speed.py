"""Encoding speed on CPU: sentsim vs sentence-transformers embedding the STSb test sentences.

The 2,758 test sentences (sentence1 of every pair, then sentence2; duplicates kept) are encoded with
batch size 32 by all-MiniLM-L6-v2, each mode in its own fresh worker process, alternating, ``--repeat``
times. Modes: ``st`` (sentence-transformers torch fp32, the dev dependency), ``sentsim`` (the torch
default, dtype auto), ``sentsim-fp32``, ``sentsim-onnx-fp32`` and one ``sentsim-onnx-int8-<isa>`` per
int8 file of ``sentsim export --quantize int8`` that this CPU can run, and sentence-transformers' own
ONNX path, ``st-onnx`` (fp32) and ``st-onnx-qint8`` (``export_dynamic_quantized_onnx_model`` for this
CPU), run from a peer venv (``--peer-venv``, created on demand with sentence-transformers[onnx] 5.7 and
optimum-onnx; 6.2's onnx extra does not resolve against transformers 5). Each worker first encodes ~64
sentences untimed to warm up, then times one full encode, and scores its embeddings (test
Spearman(cosine)×100) so a speed-up that costs accuracy shows. Medians are reported.

    .venv/bin/python benchmarks/encode_speed.py --repeat 5 --json benchmarks/results/encode_speed.json
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path
from typing import Any

from _common import (
    DEFAULT_DATA,
    WORKER_ENVIRONMENT,
    emit_result,
    environment_record,
    format_table,
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

BATCH_SIZE = 32
WARMUP_SENTENCES = 64

#: Accuracy budget of a fast path: STSb test Spearman within this of sentsim's fp32 (82.03).
SPEARMAN_BUDGET = 0.3
TORCH_MODES = ("st", "sentsim", "sentsim-fp32")
PEER_MODES = ("st-onnx", "st-onnx-qint8")
INT8_ISAS = ("avx512_vnni", "avx2", "arm64")
NAMES = {"st": "sentence-transformers", "sentsim": "sentsim", "sentsim-fp32": "sentsim (fp32)",
         "sentsim-onnx-fp32": "sentsim onnx fp32", "st-onnx": "sentence-transformers onnx",
         "st-onnx-qint8": "sentence-transformers onnx-qint8",
         **{f"sentsim-onnx-int8-{isa}": f"sentsim onnx int8 {isa}" for isa in INT8_ISAS}}
MODES = tuple(NAMES)
CACHE = Path(__file__).resolve().parent / "results" / "encode-speed-models"
DEFAULT_PEER_VENV = Path(__file__).resolve().parent / ".peer-venv"


# -- workers --------------------------------------------------------------------------------------
def load_encoder(mode: str, payload: dict[str, Any]) -> tuple[Any, str]:
    """The mode's encode function (sentences → numpy matrix) and the precision it runs in."""
    if mode in ("st", *PEER_MODES):
        return load_st_encoder(mode, payload)
    if mode.startswith("sentsim-onnx"):
        from sentsim.inference.onnx_backend import OnnxSentenceEncoder

        isa = mode.removeprefix("sentsim-onnx-int8-")
        file_name = "model.onnx" if mode == "sentsim-onnx-fp32" else f"model_qint8_{isa}.onnx"
        encoder = OnnxSentenceEncoder(payload["sentsim_onnx"], file_name=file_name)
        return (lambda sentences: encoder.encode(sentences, batch_size=BATCH_SIZE)), encoder.describe()

    from sentsim import SentenceTransformer as SentsimModel
    from sentsim.inference.forward import resolve_precision

    model = SentsimModel(payload["model"])
    precision = "fp32" if mode == "sentsim-fp32" else "auto"

    def sentsim_encode(sentences: list[str]) -> Any:
        if precision == "auto":  # the default path: no precision argument at all
            return model.encode(sentences, batch_size=BATCH_SIZE)
        return model.encode(sentences, batch_size=BATCH_SIZE, dtype=precision)

    return sentsim_encode, resolve_precision(precision, model.device)


def load_st_encoder(mode: str, payload: dict[str, Any]) -> tuple[Any, str]:
    """sentence-transformers: torch fp32 here, or (in the peer venv) its ONNX fp32 / qint8 files."""
    from sentence_transformers import SentenceTransformer

    if mode == "st":
        st_model, precision = SentenceTransformer(payload["model"]), "fp32"
    else:
        file_name = "onnx/model.onnx" if mode == "st-onnx" else f"onnx/{peer_qint8_file(payload['st_isa'])}"
        st_model = SentenceTransformer(payload["st_onnx"], backend="onnx", model_kwargs={"file_name": file_name})
        precision = file_name

    def st_encode(sentences: list[str]) -> Any:
        return st_model.encode(sentences, batch_size=BATCH_SIZE, show_progress_bar=False)

    return st_encode, precision


def worker_main(mode: str, payload_path: Path) -> None:
    """Warms up, times one full encode, scores it, then prints one JSON line (the only thing on stdout)."""
    payload = read_payload(payload_path)
    test = payload["splits"]["test"]
    sentences = test["sentences1"] + test["sentences2"]
    with stdout_to_stderr() as result_stream:
        import torch

        started = time.perf_counter()
        encode, precision = load_encoder(mode, payload)
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
            "torch_threads": torch.get_num_threads(), "versions": worker_versions(),
        }
    emit_result(result, result_stream)


def worker_versions() -> dict[str, str]:
    """Library versions from package metadata: the peer venv has no sentsim to ask."""
    import importlib.metadata

    versions = {}
    for name in ("torch", "transformers", "sentence-transformers", "sentsim", "onnxruntime", "optimum-onnx"):
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return versions


# -- preparation: exports and the peer venv ------------------------------------------------------------
PEER_EXPORT = """
import sys
from sentence_transformers import SentenceTransformer, export_dynamic_quantized_onnx_model
source, target, isa = sys.argv[1:4]
model = SentenceTransformer(source, backend="onnx")  # exports onnx/model.onnx through optimum
model.save_pretrained(target)
export_dynamic_quantized_onnx_model(model, isa, target)
"""


def peer_python(folder: Path) -> Path:
    """The peer venv's python; created on first use (pip installs, a few minutes)."""
    import subprocess
    import sys

    python = folder / "bin" / "python"
    if python.is_file():
        return python
    print(f"creating the peer venv {folder} (sentence-transformers[onnx] 5.7 + optimum-onnx) …", flush=True)
    subprocess.run([sys.executable, "-m", "venv", str(folder)], check=True)
    # torch first and pinned: any other spec pulls a multi-GB CUDA build.
    subprocess.run([str(python), "-m", "pip", "install", "-q", "torch==2.13.0"], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "-q", "sentence-transformers[onnx]", "optimum-onnx"],
                   check=True)
    return python


def peer_qint8_file(isa: str) -> str:
    """The name sentence-transformers gives its int8 file: u8 weights for AVX2, hence "quint8" there."""
    return f"model_quint8_{isa}.onnx" if isa == "avx2" else f"model_qint8_{isa}.onnx"


def export_is_stale(folder: Path) -> bool:
    """True when ``folder`` holds no export, or one whose int8 files predate the current fusions, weight
    types or AVX2 pair limit."""
    import json

    from sentsim.export.quantize import DYNAMIC_ISAS, FUSED_GRAPH, PAIR_LIMIT, PAIRWISE_16_BIT

    manifest = folder / "onnx" / "sentsim_onnx.json"
    if not manifest.is_file():
        return True
    variants = json.loads(manifest.read_text(encoding="utf-8")).get("variants", {})
    dynamic = [entry for entry in variants.values() if entry.get("precision") == "int8-dynamic"]
    return any(entry.get("graph") != FUSED_GRAPH or entry.get("weights") != DYNAMIC_ISAS.get(entry.get("isa"))
               or (entry.get("isa") in PAIRWISE_16_BIT and (entry.get("pair_limit") != PAIR_LIMIT
                                                            or "attention_values_reordered" not in entry))
               for entry in dynamic)


def prepare_exports(source: Path, peer: Path | None, *, emulate_avx2: bool = False) -> dict[str, str]:
    """sentsim's export (fp32 + int8) and, with a peer venv, sentence-transformers' own; cached in CACHE."""
    import subprocess
    import sys

    from sentsim.environment import onnx_isa

    paths: dict[str, str] = {"sentsim_onnx": str(CACHE / "sentsim-onnx")}
    if export_is_stale(CACHE / "sentsim-onnx"):  # exported in a child, as in print_header
        subprocess.run([sys.executable, "-m", "sentsim", "export", str(source), "-o", str(CACHE / "sentsim-onnx"),
                        "--quantize", "int8", "--overwrite"], check=True)
    if peer is not None:
        isa = "avx2" if emulate_avx2 else {"avx512_vnni": "avx512_vnni", "avx512": "avx512",
                                             "arm64": "arm64"}.get(onnx_isa() or "", "avx2")
        target = CACHE / "st-onnx"
        if not (target / "onnx" / peer_qint8_file(isa)).is_file():
            subprocess.run([str(peer), "-c", PEER_EXPORT, str(source), str(target), isa], check=True,
                           env={**os.environ, **WORKER_ENVIRONMENT})
        paths.update(st_onnx=str(target), st_isa=isa)
    return paths


def available_modes(peer: bool, *, emulate_avx2: bool = False) -> tuple[str, ...]:
    """Every mode this machine can run: int8 files for other instruction sets are left out (under
    ``--emulate-avx2`` all but the AVX2 one, as on a real AVX2 CPU)."""
    from sentsim.environment import onnx_isa

    isa = "avx2" if emulate_avx2 else onnx_isa()
    runnable = {"avx512_vnni": {"avx512_vnni", "avx2"}, "avx512": {"avx2"}, "avx2": {"avx2"},
                "arm64": {"arm64"}}.get(isa or "", set())
    return tuple(mode for mode in MODES if (peer or mode not in PEER_MODES)
                 and (not mode.startswith("sentsim-onnx-int8-") or mode.removeprefix("sentsim-onnx-int8-") in runnable))


# -- the parent -----------------------------------------------------------------------------------
def parse_arguments(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=1, help="rounds of every mode; medians are reported")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="the unpacked stsbenchmark folder")
    parser.add_argument("--limit", type=int, default=None,
                        help="use only the first N test pairs, i.e. 2×N sentences (smoke tests)")
    parser.add_argument("--peer-venv", type=Path, default=DEFAULT_PEER_VENV,
                        help="venv for sentence-transformers' own ONNX modes (created if missing)")
    parser.add_argument("--no-peer", action="store_true", help="skip sentence-transformers' ONNX modes")
    parser.add_argument("--modes", nargs="+", choices=MODES, default=None, help="run only these modes")
    parser.add_argument("--json", type=Path, default=None, help="also write all raw results here")
    parser.add_argument("--emulate-avx2", action="store_true",
                        help="make every worker (both libraries) see an AVX2-only CPU through CPUID (an "
                             "emulation, clearly labelled; benchmarks/_isa_cap.py)")
    parser.add_argument("--worker", choices=MODES, help=argparse.SUPPRESS)
    parser.add_argument("--payload", type=Path, help=argparse.SUPPRESS)
    arguments = parser.parse_args(argv)
    if arguments.repeat < 1:
        parser.error("--repeat must be at least 1")
    if arguments.limit is not None and arguments.limit < 2:
        parser.error("--limit must be at least 2 (Spearman needs two pairs)")
    return arguments


def print_header(sentences: int, repeat: int, *, emulate_avx2: bool) -> None:
    import subprocess
    import sys

    from sentsim.environment import cpu_flags

    # Asked in a child: torch in this process would raise every worker's peak RSS (Linux keeps the
    # high-water mark across fork + exec).
    capability = subprocess.run([sys.executable, "-c", "import torch; print(torch.backends.cpu.get_cpu_capability())"],
                                capture_output=True, text=True, check=True).stdout.strip()
    flags = cpu_flags()
    present = ", ".join(f"{name} {'yes' if any(flag.startswith(name) for flag in flags) else 'no'}"
                        for name in ("avx512_vnni", "avx512_bf16", "amx"))
    print(f"CPU: {capability} ({present}{' in /proc/cpuinfo' if emulate_avx2 else ''})", flush=True)
    if emulate_avx2:
        print(EMULATION_NOTE, flush=True)
    print(f"encoding {sentences} STSb test sentences with all-MiniLM-L6-v2, batch {BATCH_SIZE}; "
          f"{repeat} round(s)", flush=True)


def main(argv: list[str] | None = None) -> None:
    arguments = parse_arguments(argv)
    if arguments.worker:
        worker_main(arguments.worker, arguments.payload)
        return
    splits = load_splits(arguments.data, ("test",), arguments.limit)
    sentences = 2 * len(splits["test"]["scores"])
    emulate = arguments.emulate_avx2
    modes = [mode for mode in available_modes(not arguments.no_peer, emulate_avx2=emulate)
             if mode in (arguments.modes or MODES)]
    peer = peer_python(arguments.peer_venv) if any(mode in PEER_MODES for mode in modes) else None
    exports = prepare_exports(model_folder(), peer, emulate_avx2=emulate)  # exported uncapped: same files
    if emulate:
        os.environ.update(avx2_environment())  # inherited by every worker (run_worker passes os.environ on)
    print_header(sentences, arguments.repeat, emulate_avx2=emulate)
    payload = {"model": str(model_folder()), "splits": splits, **exports}
    load_at_start = warn_if_busy()
    script = Path(__file__).resolve()
    with payload_file(payload) as path:
        def run_one(mode: str, round_index: int) -> dict[str, Any]:
            python = peer if mode in PEER_MODES else None
            return run_worker(script, ["--worker", mode, "--payload", str(path)], python=python)

        results = run_alternating(modes, arguments.repeat, run_one, report=print_run)
    medians = {mode: {key: median_of(results, mode, key)
                      for key in ("encode_seconds", "sentences_per_second", "peak_rss_mb", "test")}
               for mode in modes}
    print_summary(medians)
    if arguments.json is not None:
        write_json(arguments.json, {
            "benchmark": "encode_speed",
            "settings": {"batch_size": BATCH_SIZE, "warmup_sentences": WARMUP_SENTENCES, "sentences": sentences,
                         "repeat": arguments.repeat, "limit": arguments.limit, "data": str(arguments.data),
                         "emulate_avx2": emulate},
            "environment": environment_record(load_at_start), "runs": results, "medians": medians,
        })


def print_run(result: dict[str, Any]) -> None:
    print(f"run {result['round']}  {NAMES[result['mode']]:<34}  encode {result['encode_seconds']:7.2f} s  "
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
    if "st" not in medians or "sentsim-fp32" not in medians:
        print("(the ratios need the st and sentsim-fp32 modes)")
        return
    st, fp32 = medians["st"], medians["sentsim-fp32"]
    print(f"fp32 ratio sentsim-fp32/sentence-transformers: "
          f"{fp32['sentences_per_second'] / st['sentences_per_second']:.2f}×")
    # sentsim's fastest path whose Spearman stays within the budget of its own fp32.
    within = {mode: values for mode, values in medians.items() if mode.startswith("sentsim")
              and fp32["test"] - values["test"] <= SPEARMAN_BUDGET}
    best = max(within, key=lambda mode: within[mode]["sentences_per_second"])
    st_best = max((mode for mode in medians if mode.startswith("st")),
                  key=lambda mode: medians[mode]["sentences_per_second"])
    speed = medians[best]["sentences_per_second"]
    print(f"sentsim's fastest path within {SPEARMAN_BUDGET} Spearman of fp32: {NAMES[best]} "
          f"({speed:.1f} sentences/s, test {medians[best]['test']:.2f} vs {fp32['test']:.2f})")
    print(f"encode throughput ratio sentsim/sentence-transformers' best CPU path ({NAMES[st_best]}, test "
          f"{medians[st_best]['test']:.2f}): {speed / medians[st_best]['sentences_per_second']:.2f}×")
    print(f"encode throughput ratio sentsim/sentence-transformers: {speed / st['sentences_per_second']:.2f}×")


if __name__ == "__main__":
    main()
