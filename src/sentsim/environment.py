"""What this machine and this install are: offline mode, library versions, CPU capabilities, devices."""

from __future__ import annotations

import functools
import importlib.util
import os
from pathlib import Path
from typing import Any

from sentsim.errors import ConfigError


@functools.cache
def torch_installed() -> bool:
    """Whether torch can be imported here. Asked once: Python does not remember a failed import, so in
    the light install (``sentsim[onnx]``) each ``import torch`` attempt would search the path again."""
    return importlib.util.find_spec("torch") is not None


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


def _read_cgroup_cpu_max() -> str:
    with open("/sys/fs/cgroup/cpu.max", encoding="utf-8") as handle:
        return handle.read()


def cpu_quota() -> int | None:
    """CPUs the cgroup (v2) quota allows, rounded up (``docker --cpus=2`` → 2); None when unlimited.

    Affinity shows every core of the host inside such a container, so sizing thread pools from it
    alone would start dozens of threads that then share two CPUs' worth of time.
    """
    try:
        quota, _, period = _read_cgroup_cpu_max().strip().partition(" ")
    except OSError:
        return None
    if quota == "max":
        return None
    try:
        return max(1, -(-int(quota) // int(period or "100000")))
    except ValueError:
        return None


def physical_cores() -> int:
    """Physical cores (not hardware threads) this process may use, within its affinity and cgroup quota:
    int8/fp32 GEMMs gain nothing from a core's second thread."""
    available = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    available = min(available, cpu_quota() or available)
    try:
        text = _read_cpuinfo()
    except OSError:
        return max(1, available)
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
    return max(1, min(len(cores) or available, available))


def cpuid_features() -> dict[str, bool]:
    """The x86 features numpy's own kernel dispatch found (``AVX2``, ``AVX512F``, ``AVX512VNNI`` …), or {}.

    numpy asks CPUID and the operating system (whether it saves AVX-512 state), as ONNX Runtime does
    when it picks its kernels, and works on every OS: Windows and macOS have no /proc/cpuinfo.
    """
    try:
        import numpy

        core = getattr(numpy, "_core", None) or numpy.core
        return {str(name): bool(value) for name, value in core._multiarray_umath.__cpu_features__.items()}
    except (ImportError, AttributeError):
        return {}


def onnx_isa(flags: frozenset[str] | None = None) -> str | None:
    """The instruction-set name of the quantized ONNX file this CPU runs best, or None (plain fp32).

    Without ``flags``, the CPU's features come from CPUID (:func:`cpuid_features`), which is what
    ONNX Runtime dispatches on, so the file matches the kernels that will run it; Linux's flags
    (:func:`cpu_flags`) where numpy does not say.
    """
    import platform

    if flags is None:
        features = cpuid_features()
        if features.get("AVX2") is not None or features.get("AVX512F") is not None:
            flags = frozenset(name for name, key in (("avx512_vnni", "AVX512VNNI"), ("avx512f", "AVX512F"),
                                                     ("avx2", "AVX2")) if features.get(key))
        else:
            flags = cpu_flags()
    if "avx512_vnni" in flags or "avx512vnni" in flags:
        return "avx512_vnni"
    if "avx512f" in flags:
        return "avx512"
    if "avx2" in flags:
        return "avx2"
    if platform.machine().lower() in {"aarch64", "arm64"}:
        return "arm64"
    return None


#: What ``--device`` accepts; "auto" is cuda where a GPU is usable, else cpu.
DEVICE_CHOICES = ("auto", "cpu", "cuda")


def resolve_device(name: str = "auto") -> str:
    """``auto``/``cpu``/``cuda`` (or ``cuda:N``) → the torch device string to load and run models on.

    Imports torch only when called, so the command line's help stays torch-free.

    Raises:
        ConfigError: for an unknown name, or cuda asked for where no usable GPU is.
    """
    choice = str(name).strip().lower()
    if choice not in DEVICE_CHOICES and not choice.startswith("cuda:"):
        raise ConfigError(f"device must be one of {', '.join(DEVICE_CHOICES)}, not {name!r}")
    if choice == "cpu":
        return "cpu"
    import torch

    available = torch.cuda.is_available()
    if choice == "auto":
        return "cuda" if available else "cpu"
    if not available:
        raise ConfigError(f"--device {choice}: CUDA is not available here (torch {torch.__version__}, "
                          "no usable GPU); use --device cpu or auto")
    if ":" in choice:
        index = choice.split(":", 1)[1]
        if not index.isdigit() or int(index) >= torch.cuda.device_count():
            raise ConfigError(f"--device {choice}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    return choice


# -- what a result depends on besides the code: library versions and the machine -------------------
#: The libraries a training run records in its config.json, in that order.
RUN_LIBRARIES = ("sentsim", "torch", "transformers", "accelerate")


def library_versions(names: tuple[str, ...] = RUN_LIBRARIES, *, python: bool = True) -> dict[str, str]:
    """Installed versions of ``names`` (those not installed are left out), then Python's.

    Read from package metadata, so nothing is imported: a light process can report versions too.
    """
    import importlib.metadata
    import platform

    versions = {}
    for name in names:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    if python:
        versions["python"] = platform.python_version()
    return versions


def machine_details(*, torch_threads: bool = False) -> dict[str, Any]:
    """Platform, CPU model and core count (bf16 support, so the default precision, depends on the CPU);
    with ``torch_threads`` also the intra-op threads torch uses (imports torch).
    """
    import platform

    details: dict[str, Any] = {"platform": platform.platform(), "processor": cpu_name(), "cpu_count": os.cpu_count()}
    if torch_threads:
        import torch

        details["torch_threads"] = torch.get_num_threads()
    return details


def cpu_name() -> str:
    """The CPU model from /proc/cpuinfo, else what the platform module says."""
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform

    return platform.processor() or "unknown"
