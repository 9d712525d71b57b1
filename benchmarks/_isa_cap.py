"""``--emulate-avx2``: run benchmark workers as if on a CPU with AVX2 and nothing above it.

Most users' CPUs are like a Zen 3 (AVX2, no AVX-512, no VNNI, no native bf16), but the machines the
benchmarks run on often have AVX-512. Environment variables cap torch, oneDNN and MKL, not ONNX
Runtime, so the int8 paths of issue 12 could not be measured in AVX2 at all. The preloaded library
``isa_cap/cpuid_avx2.c`` makes CPUID itself report an AVX2-only CPU (Linux's CPUID faulting), so every
library in the worker, and sentsim's own ``auto`` choices that ask torch, pick what they would pick on
such a CPU. It is an emulation, labelled as one wherever a figure is printed: the kernels are AVX2,
the caches, memory and clocks are this machine's.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
SOURCE = HERE / "isa_cap" / "cpuid_avx2.c"
LIBRARY = HERE / "results" / "isa-cap" / "libcpuid_avx2.so"
#: glibc picks its string functions before the preloaded library runs; its tunables cap those.
GLIBC_TUNABLES = "glibc.cpu.hwcaps=-AVX512F,-AVX512VL,-AVX512BW,-AVX512DQ,-AVX512CD,-AVX_VNNI"
NOTE = ("EMULATED AVX2 (CPUID reports AVX2 and nothing above it: no AVX-512, VNNI, native bf16 or AMX; "
        "benchmarks/_isa_cap.py): the kernels a CPU without AVX-512 runs, on this CPU's caches, memory and "
        "clocks; not a measurement of a real AVX2 CPU (e.g. Zen 3)")
_PROBE = ("import json, numpy, torch; features = numpy._core._multiarray_umath.__cpu_features__; "
          "print(json.dumps({'torch': torch.backends.cpu.get_cpu_capability(), 'avx512f': features['AVX512F'], "
          "'avx2': features['AVX2'], 'native_bf16': bool(torch.cpu._is_avx512_bf16_supported() "
          "or torch.cpu._is_amx_tile_supported())}))")


def avx2_environment(*, keep_avx512: bool = False) -> dict[str, str]:
    """The variables that make a child process see an AVX2-only CPU; exits with the reason if they cannot.

    ``keep_avx512`` keeps AVX-512 F/DQ/CD/BW/VL (a Skylake-X: AVX-512 without VNNI or native bf16). The
    library is compiled on first use (gcc) into the ignored results folder, and checked in a child:
    torch must report AVX2 (AVX512) without native bf16, and numpy AVX2 without (with) AVX-512.
    """
    if not LIBRARY.is_file() or LIBRARY.stat().st_mtime < SOURCE.stat().st_mtime:
        LIBRARY.parent.mkdir(parents=True, exist_ok=True)
        built = subprocess.run(["gcc", "-O2", "-Wall", "-shared", "-fPIC", "-o", str(LIBRARY), str(SOURCE)],
                               capture_output=True, text=True, check=False)
        if built.returncode != 0:
            sys.exit(f"--emulate-avx2: building {SOURCE.name} failed (gcc needed):\n{built.stderr}")
    environment = {"LD_PRELOAD": str(LIBRARY), "GLIBC_TUNABLES": GLIBC_TUNABLES}
    if keep_avx512:
        environment = {"LD_PRELOAD": str(LIBRARY), "CPUID_CAP": "avx512"}
    probe = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True, check=False,
                           env={**os.environ, **environment})
    if probe.returncode != 0:
        sys.exit(f"--emulate-avx2: the capped probe failed (exit {probe.returncode}; CPUID faulting needs "
                 f"Linux on x86-64 with the cpuid_fault flag):\n{probe.stderr.strip()}")
    seen = json.loads(probe.stdout.strip().splitlines()[-1])
    expected = {"torch": "AVX512" if keep_avx512 else "AVX2", "avx512f": keep_avx512, "avx2": True,
                "native_bf16": False}
    if seen != expected:
        sys.exit(f"--emulate-avx2: the cap did not take: the capped probe saw {seen}")
    return environment
