"""How far an eager training step is from its matrix products: the floor of issue 14's fp32 bar.

Trains all-MiniLM-L6-v2 with the classic recipe (batch 16, cosine loss) for ``--steps`` steps of
sentsim's ``train()``, once timed plainly and once under torch's profiler, and reports:

- seconds per step (unprofiled);
- the milliseconds per step the matrix products take under the profiler (``mm``, ``addmm``, ``bmm``),
  their share of the unprofiled step, and what is left for everything else;
- the GFLOP/s torch reaches on MiniLM's linear shapes alone (forward, weight gradient, input gradient);
- with ``--st-seconds-per-step S`` (sentence-transformers' seconds per step from ``train_speed.py``,
  its training seconds / 360): the step time a ratio of ``--target`` needs, and how much of the
  non-GEMM time that leaves.

Why: sentsim's length-grouped batches already carry only 1.12x padding against sentence-transformers'
2.2x, so the ratio left to win sits in what is not a matrix product. Run it under the benchmarks' CPUID
cap to see an AVX2 CPU's figures::

    LD_PRELOAD=benchmarks/results/isa-cap/libcpuid_avx2.so \\
    GLIBC_TUNABLES=glibc.cpu.hwcaps=-AVX512F,-AVX512VL,-AVX512BW,-AVX512DQ,-AVX512CD,-AVX_VNNI \\
    .venv/bin/python experiments/step_floor.py --steps 60 --dtype fp32 --st-seconds-per-step 0.618

(the library is built by any benchmark run with ``--emulate-avx2``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy
import torch

from sentsim import SentenceTransformer
from sentsim.data import read_stsbenchmark
from sentsim.persistence.hub import bundled_model_path
from sentsim.training import TrainConfig, train

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "stsbenchmark"
GEMMS = ("aten::mm", "aten::addmm", "aten::bmm")
#: MiniLM-L6's linear shapes (in, out) and a classic step's typical token count (516 padded tokens);
#: 384x1152 is a fused query/key/value projection, timed to see whether fusing the three would pay.
SHAPES = ((384, 384), (384, 1536), (1536, 384), (384, 1152))


def train_steps(steps: int, dtype: str, *, profile: bool) -> tuple[float, Any]:
    """Seconds per step of ``steps`` classic steps; the profiler's key averages when ``profile``."""
    pairs = read_stsbenchmark(DATA, "train")
    model = SentenceTransformer(str(bundled_model_path()))
    config = TrainConfig(batch_size=16, learning_rate=2e-5, warmup_ratio=0.1, seed=42, max_steps=steps, dtype=dtype)
    profiler = torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) if profile else None
    if profiler is not None:
        profiler.__enter__()
    result = train(model, sentences_a=pairs.sentences1, sentences_b=pairs.sentences2, labels=pairs.scores,
                   config=config, quiet=True)
    if profiler is not None:
        profiler.__exit__(None, None, None)
    return result.train_seconds / steps, profiler.key_averages() if profiler is not None else None


def gemm_rates(tokens: int = 516, repeats: int = 40) -> dict[str, float]:
    """GFLOP/s of the three products of each linear shape at ``tokens`` rows, fp32.

    Forward also through oneDNN (``aten::mkldnn_linear`` on mkldnn tensors), and all three through
    numpy's OpenBLAS, since torch's fp32 ``linear`` and ``mm`` call MKL: would another library run
    these shapes faster on this CPU (MKL is Intel's; the question matters most on AMD)?
    """
    def rate(call: Any, *arguments: Any, flop: float) -> float:
        for _ in range(5):
            call(*arguments)
        started = time.perf_counter()
        for _ in range(repeats):
            call(*arguments)
        return flop * repeats / (time.perf_counter() - started) / 1e9

    rates = {}
    for inputs, outputs in SHAPES:
        x, weight, bias = torch.randn(tokens, inputs), torch.randn(outputs, inputs), torch.randn(outputs)
        grad = torch.randn(tokens, outputs)
        flop = 2.0 * tokens * inputs * outputs
        rates[f"{inputs}x{outputs} forward"] = rate(torch.nn.functional.linear, x, weight, bias, flop=flop)
        rates[f"{inputs}x{outputs} forward onednn"] = rate(torch.ops.aten.mkldnn_linear, x.to_mkldnn(),
                                                           weight.to_mkldnn(), bias, flop=flop)
        rates[f"{inputs}x{outputs} weight grad"] = rate(torch.mm, grad.t(), x, flop=flop)
        rates[f"{inputs}x{outputs} input grad"] = rate(torch.mm, grad, weight, flop=flop)
        x_np, weight_np, grad_np = x.numpy(), weight.numpy(), grad.numpy()  # the same memory
        for name, left, right in (("forward", x_np, weight_np.T), ("weight grad", grad_np.T, x_np),
                                  ("input grad", grad_np, weight_np)):
            rates[f"{inputs}x{outputs} {name} openblas"] = rate(numpy.matmul, left, right, flop=flop)
    return {name: round(value, 1) for name, value in rates.items()}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--dtype", choices=("fp32", "bf16"), default="fp32")
    parser.add_argument("--st-seconds-per-step", type=float, default=None)
    parser.add_argument("--target", type=float, default=2.5, help="throughput ratio to size the budget for")
    parser.add_argument("--gemms-only", action="store_true", help="only the GEMM rates, no training steps")
    arguments = parser.parse_args(argv)
    print(f"torch capability {torch.backends.cpu.get_cpu_capability()}, {torch.get_num_threads()} threads",
          file=sys.stderr)
    if arguments.gemms_only:
        print(json.dumps({"capability": torch.backends.cpu.get_cpu_capability(), "gemm_gflops": gemm_rates(
            repeats=100)}, indent=2))
        return
    step, _ = train_steps(arguments.steps, arguments.dtype, profile=False)
    _, averages = train_steps(arguments.steps, arguments.dtype, profile=True)
    # The products' own time, not their share of the profile: under the profiler the fresh 47 MB
    # word-embedding gradient's fill_ shows 60-90 ms per step, while freezing that table (no such
    # gradient at all) leaves the unprofiled step unchanged (benchmarks/README.md).
    gemm = sum(event.self_cpu_time_total for event in averages if event.key in GEMMS) / 1e6 / arguments.steps
    figures: dict[str, Any] = {
        "capability": torch.backends.cpu.get_cpu_capability(), "dtype": arguments.dtype, "steps": arguments.steps,
        "seconds_per_step": round(step, 4), "gemm_ms_per_step": round(1000 * gemm, 1),
        "gemm_share": round(gemm / step, 3), "other_ms_per_step": round(1000 * (step - gemm), 1),
        "gemm_gflops": gemm_rates(),
    }
    if arguments.st_seconds_per_step:
        needed = arguments.st_seconds_per_step / arguments.target
        figures.update(step_needed_ms=round(1000 * needed, 1),
                       other_ms_allowed=round(1000 * (needed - gemm), 1),
                       ratio_if_nothing_but_gemms=round(arguments.st_seconds_per_step / gemm, 2))
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
