"""Every ONNX variant of all-MiniLM-L6-v2 side by side: sentences/s and STSb test Spearman each.

Builds the variants once into ``benchmarks/results/onnx-variants/`` (fp32 as exported, fp32 with ONNX
Runtime's fused transformer graph, dynamic int8 with and without per-channel scales and 7-bit
weights, static int8 calibrated on STSb train sentences), then encodes the STSb test sentences with
each, batch 32, after a short warm-up, plus sentsim's torch path in fp32 and bf16 for reference.
This is the measurement behind ``sentsim export``'s default per CPU (see ``export.onnx_export``).

    nice -n 10 .venv/bin/python benchmarks/onnx_variants.py --json benchmarks/results/onnx_variants.json
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from _common import DEFAULT_DATA, REPO_ROOT, format_table, load_splits, model_folder, spearman_cosine, write_json

BATCH_SIZE = 32
WARMUP_SENTENCES = 64
CACHE = REPO_ROOT / "benchmarks" / "results" / "onnx-variants"
CALIBRATION_SENTENCES = 512


def build_variants(folder: Path, train_sentences: list[str]) -> dict[str, str]:
    """Variant name → file under ``folder/onnx``; files already there are reused."""
    from sentsim.encoders.bi_encoder import SentenceTransformer
    from sentsim.export.onnx_export import export_model
    from sentsim.export.quantize import optimize_graph, quantize_dynamic_int8, quantize_static_int8

    if not (folder / "onnx" / "model.onnx").is_file():
        export_model(model_folder(), folder, overwrite=True)
    onnx = folder / "onnx"
    model = SentenceTransformer(folder, device="cpu")
    if not (onnx / "model_opt.onnx").is_file():
        optimize_graph(onnx / "model.onnx", onnx / "model_opt.onnx", model)
    plan = {
        "int8 dynamic": ("model.onnx", "q_plain.onnx", {"reduce_range": False}),
        "int8 dynamic per-channel": ("model.onnx", "q_plain_pc.onnx", {"reduce_range": False, "per_channel": True}),
        "fused + int8 dynamic": ("model_opt.onnx", "q_opt.onnx", {"reduce_range": False}),
        "fused + int8 dynamic per-channel": ("model_opt.onnx", "q_opt_pc.onnx",
                                             {"reduce_range": False, "per_channel": True}),
        "fused + int8 dynamic 7-bit s8": ("model_opt.onnx", "q_opt_rr.onnx", {"reduce_range": True}),
        "fused + int8 dynamic u8 weights (avx2 file)": ("model_opt.onnx", "q_opt_u8.onnx", {"weight_type": "QUInt8"}),
    }
    files = {"fp32 exported": "model.onnx", "fp32 fused": "model_opt.onnx"}
    for name, (source, target, options) in plan.items():
        if not (onnx / target).is_file():
            quantize_dynamic_int8(onnx / source, onnx / target, **options)
        files[name] = target
    if not (onnx / "q_static.onnx").is_file():
        quantize_static_int8(onnx / "model.onnx", onnx / "q_static.onnx", model, train_sentences)
    files["int8 static per-channel (QDQ)"] = "q_static.onnx"
    return files


def measure(encode: Any, test: dict[str, list]) -> dict[str, float]:
    sentences = test["sentences1"] + test["sentences2"]
    encode(sentences[:WARMUP_SENTENCES])
    started = time.perf_counter()
    embeddings = encode(sentences)
    seconds = time.perf_counter() - started
    half = len(test["sentences1"])
    return {"sentences_per_second": len(sentences) / seconds,
            "test": spearman_cosine(embeddings[:half], embeddings[half:], test["scores"])}


def encoders(files: dict[str, str]) -> dict[str, Any]:
    """Variant name → encode function, every session loaded once; sentsim's torch path for reference."""
    from sentsim import SentenceTransformer
    from sentsim.inference.onnx_backend import OnnxSentenceEncoder

    result: dict[str, Any] = {}
    for name, file_name in files.items():
        encoder = OnnxSentenceEncoder(CACHE, file_name=file_name)
        result[name] = lambda sentences, e=encoder: e.encode(sentences, batch_size=BATCH_SIZE)
    model = SentenceTransformer(CACHE)
    for dtype in ("fp32", "bf16"):
        result[f"torch {dtype} (sentsim)"] = lambda sentences, d=dtype: model.encode(
            sentences, batch_size=BATCH_SIZE, dtype=d)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--limit", type=int, default=None, help="only the first N test pairs (smoke test)")
    parser.add_argument("--repeat", type=int, default=2, help="alternating rounds; the best speed is kept")
    parser.add_argument("--json", type=Path, default=None)
    arguments = parser.parse_args()
    splits = load_splits(arguments.data, ("train", "test"), arguments.limit)
    files = build_variants(CACHE, splits["train"]["sentences1"][:CALIBRATION_SENTENCES])
    runs: dict[str, list[dict[str, float]]] = {}
    named = encoders(files)
    for round_index in range(arguments.repeat):
        order = list(named) if round_index % 2 == 0 else list(reversed(named))
        for name in order:
            result = measure(named[name], splits["test"])
            runs.setdefault(name, []).append(result)
            print(f"round {round_index + 1}  {name:<44} {result['sentences_per_second']:7.1f} sentences/s  "
                  f"test {result['test']:.2f}", flush=True)
    # Best of the rounds: on a shared machine the slow runs measure the neighbours, not the variant.
    best = {name: max(values, key=lambda value: value["sentences_per_second"]) for name, values in runs.items()}
    reference = best["fp32 exported"]["test"]
    rows = [[name, files.get(name, "-"), f"{value['sentences_per_second']:.1f}", f"{value['test']:.2f}",
             f"{value['test'] - reference:+.2f}"] for name, value in best.items()]
    print()
    print(format_table(["variant", "file", "sentences/s", "test", "vs fp32"], rows))
    if arguments.json is not None:
        write_json(arguments.json, {"benchmark": "onnx_variants", "batch_size": BATCH_SIZE, "files": files,
                                    "runs": runs, "best": best})


if __name__ == "__main__":
    main()
