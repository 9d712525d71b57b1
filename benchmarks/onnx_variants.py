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
        "fused + int8 dynamic 7-bit (avx2 file)": ("model_opt.onnx", "q_opt_rr.onnx", {"reduce_range": True}),
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--limit", type=int, default=None, help="only the first N test pairs (smoke test)")
    parser.add_argument("--json", type=Path, default=None)
    arguments = parser.parse_args()
    splits = load_splits(arguments.data, ("train", "test"), arguments.limit)
    train = splits["train"]["sentences1"][:CALIBRATION_SENTENCES]
    files = build_variants(CACHE, train)
    from sentsim.inference.onnx_backend import OnnxSentenceEncoder

    results = {}
    for name, file_name in files.items():
        encoder = OnnxSentenceEncoder(CACHE, file_name=file_name)
        results[name] = {"file": file_name, **measure(lambda s, e=encoder: e.encode(s, batch_size=BATCH_SIZE),
                                                      splits["test"])}
        print(f"{name:<40} {results[name]['sentences_per_second']:7.1f} sentences/s  "
              f"test {results[name]['test']:.2f}", flush=True)
        del encoder
    from sentsim import SentenceTransformer

    model = SentenceTransformer(CACHE)
    for dtype in ("fp32", "bf16"):
        name = f"torch {dtype} (sentsim)"
        results[name] = {"file": None, **measure(lambda s, d=dtype: model.encode(s, batch_size=BATCH_SIZE, dtype=d),
                                                 splits["test"])}
        print(f"{name:<40} {results[name]['sentences_per_second']:7.1f} sentences/s  "
              f"test {results[name]['test']:.2f}", flush=True)
    reference = results["fp32 exported"]["test"]
    rows = [[name, f"{value['sentences_per_second']:.1f}", f"{value['test']:.2f}",
             f"{value['test'] - reference:+.2f}"] for name, value in results.items()]
    print()
    print(format_table(["variant", "sentences/s", "test", "vs fp32"], rows))
    if arguments.json is not None:
        write_json(arguments.json, {"benchmark": "onnx_variants", "batch_size": BATCH_SIZE, "results": results})


if __name__ == "__main__":
    main()
