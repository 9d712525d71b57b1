"""What this machine and this install are: offline mode, library versions, CPU capabilities, devices."""

from __future__ import annotations

import os


def is_offline() -> bool:
    return any(os.environ.get(name, "").strip().lower() in {"1", "true", "yes", "on"}
               for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "SENTSIM_OFFLINE"))


# -- CPU capability (torch-free: read from /proc/cpuinfo, so the ONNX backend can use it without torch) --
#: ONNX export variants by instruction set, best first; ``onnx_isa`` picks the first the CPU has.
ONNX_ISAS = ("avx512_vnni", "avx512", "avx2", "arm64")


def _read_cpuinfo() -> str:
    with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as handle:
        return handle.read()


def cpu_flags() -> frozenset[str]:
    """The CPU feature flags Linux reports (``avx2``, ``avx512_vnni``, ``amx_tile`` …); empty elsewhere."""
    try:
        text = _read_cpuinfo()
    except OSError:
        return frozenset()
    for line in text.splitlines():
        if line.startswith(("flags", "Features")):
            return frozenset(line.split(":", 1)[1].split())
    return frozenset()


def physical_cores() -> int:
    """Physical cores (not hardware threads): int8/fp32 GEMMs gain nothing from a core's second thread."""
    try:
        text = _read_cpuinfo()
    except OSError:
        return max(1, os.cpu_count() or 1)
    cores = set()
    physical_id = core_id = None
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "physical id":
            physical_id = value.strip()
        elif key == "core id":
            core_id = value.strip()
            cores.add((physical_id, core_id))
    available = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(len(cores) or available, available))


def onnx_isa(flags: frozenset[str] | None = None) -> str | None:
    """The instruction-set name of the quantized ONNX file this CPU runs best, or None (plain fp32)."""
    import platform

    flags = cpu_flags() if flags is None else flags
    if "avx512_vnni" in flags or "avx512vnni" in flags:
        return "avx512_vnni"
    if "avx512f" in flags:
        return "avx512"
    if "avx2" in flags:
        return "avx2"
    if platform.machine().lower() in {"aarch64", "arm64"}:
        return "arm64"
    return None
