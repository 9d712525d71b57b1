"""The benchmarks' ``--emulate-avx2``: a child with the CPUID cap sees AVX2 and nothing above it, and
sentsim's own choices there are the ones it makes on a CPU without AVX-512 and native bf16."""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import REPO


def _cpuid_faulting() -> bool:
    try:
        return "cpuid_fault" in Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace").split()
    except OSError:
        return False


pytestmark = pytest.mark.skipif(
    platform.machine() != "x86_64" or not _cpuid_faulting() or shutil.which("gcc") is None,
    reason="the CPUID cap needs Linux on x86-64 with CPUID faulting and gcc")


@pytest.fixture(scope="module")
def capped_environment() -> dict[str, str]:
    sys.path.insert(0, str(REPO / "benchmarks"))
    try:
        import _isa_cap
    finally:
        sys.path.pop(0)
    return {**os.environ, **_isa_cap.avx2_environment()}


def test_a_capped_child_sees_an_avx2_cpu_and_sentsim_chooses_fp32(capped_environment: dict[str, str]) -> None:
    probe = ("import json, numpy, torch\n"
             "from sentsim.environment import onnx_isa\n"
             "from sentsim.inference.forward import resolve_precision\n"
             "features = numpy._core._multiarray_umath.__cpu_features__\n"
             "print(json.dumps({'torch': torch.backends.cpu.get_cpu_capability(),\n"
             "                  'avx512f': features['AVX512F'], 'avx512vnni': features['AVX512VNNI'],\n"
             "                  'fma3': features['FMA3'], 'auto': resolve_precision('auto', torch.device('cpu')),\n"
             "                  'onnx_isa': onnx_isa()}))\n")
    completed = subprocess.run([sys.executable, "-c", probe], env=capped_environment, capture_output=True,
                               text=True, check=True, timeout=120)
    seen = json.loads(completed.stdout.strip().splitlines()[-1])
    assert seen == {"torch": "AVX2", "avx512f": False, "avx512vnni": False, "fma3": True, "auto": "fp32",
                    "onnx_isa": "avx2"}  # sentsim picks the AVX2 int8 file, as on a real AVX2 CPU


def test_a_real_fault_under_the_cap_still_kills_the_process(capped_environment: dict[str, str]) -> None:
    """The SIGSEGV handler answers CPUID only; any other fault must not be swallowed (or loop)."""
    crash = "import ctypes; ctypes.string_at(0)"
    completed = subprocess.run([sys.executable, "-c", crash], env=capped_environment, capture_output=True,
                               timeout=60, check=False)
    assert completed.returncode == -11  # SIGSEGV, as without the cap


@pytest.mark.parametrize("keep_avx512", [False, True], ids=["avx2", "avx512-without-vnni"])
def test_avx2_kernels_saturate_unsafe_pairs_and_the_reordered_file_is_exact(
        capped_environment: dict[str, str], tmp_path: Path, keep_avx512: bool) -> None:
    """What sentsim.export.pairing guards against, seen on AVX2 kernels and on AVX-512 without VNNI (which
    runs the AVX2 file): an s8 weight pair summing above 128 overflows VPMADDUBSW's 16-bit lane; after
    reorder_integer_gemms the same file is exact."""
    pytest.importorskip("onnxruntime")
    import numpy as np

    from .test_pairing import integer_gemm_file, reorder_file

    weights = np.zeros((64, 8), np.int8)
    weights[0], weights[1] = 127, 127  # one same-sign pair: 255 * 254 does not fit in 16 bits
    weights[2:] = 1
    plain = integer_gemm_file(tmp_path / "plain.onnx", weights)
    reordered = integer_gemm_file(tmp_path / "reordered.onnx", weights)
    assert reorder_file(reordered) == 1
    probe = ("import sys, numpy as np, onnxruntime as ort\n"
             "x = np.ones((4, 64), np.float32)  # quantised to 255 everywhere\n"
             "for path in sys.argv[1:]:\n"
             "    session = ort.InferenceSession(path, providers=['CPUExecutionProvider'])\n"
             "    print(int(session.run(None, {'X': x})[0][0, 0]))\n")
    environment = capped_environment
    if keep_avx512:
        sys.path.insert(0, str(REPO / "benchmarks"))
        try:
            import _isa_cap
        finally:
            sys.path.pop(0)
        environment = {**os.environ, **_isa_cap.avx2_environment(keep_avx512=True)}
    completed = subprocess.run([sys.executable, "-c", probe, str(plain), str(reordered)], env=environment,
                               capture_output=True, text=True, check=True, timeout=120)
    plain_sum, reordered_sum = (int(line) for line in completed.stdout.split())
    exact = 255 * 127 * 2 + 255 * 62
    assert reordered_sum == exact
    assert plain_sum < exact  # saturated: the silent error the row order removes
