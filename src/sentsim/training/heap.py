"""Keep freed memory in the process while training on the CPU, so that big tensors reuse it.

glibc serves every allocation above its mmap threshold (at most 32 MiB) with a fresh ``mmap`` and
unmaps it again on free. A training step allocates the same big tensors every time: the
word-embedding gradient (30,522 × 384 floats, 47 MB, for all-MiniLM-L6-v2), the feed-forward
activations, the GEMM outputs. Each one then page-faults in again, page by page, before it can
even be zeroed. On 2 Intel Xeon cores (AVX-512, no native bf16) zeroing that gradient took 22–26
ms per fp32 step this way and 6–8 ms once the blocks came from the heap instead; the matrix
products, which write fresh outputs, ran 175 → 152–159 ms per step.

:func:`keep_freed_memory` therefore turns glibc's mmap path off (``M_MMAP_MAX`` 0) and stops it
trimming the heap (``M_TRIM_THRESHOLD``) for the duration of a training run, then restores
glibc's defaults and hands the free memory back (``malloc_trim``). It does nothing off glibc, on
CUDA, or where the user set any ``MALLOC_*_`` tuning variable themselves (their choice stands).
The computation is unchanged; only where the allocator finds memory is.
"""

from __future__ import annotations

import ctypes
import logging
import os
import platform
from collections.abc import Iterator
from contextlib import contextmanager

logger = logging.getLogger(__name__)

# mallopt parameters (malloc.h) and glibc's defaults for them on 64-bit Linux.
_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4
_DEFAULT_TRIM_THRESHOLD, _DEFAULT_MMAP_MAX = 128 * 1024, 65536
_NO_TRIM = 2**31 - 1  # mallopt takes an int: trim only past 2 GiB of free heap top
_USER_TUNING = ("MALLOC_MMAP_MAX_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_MMAP_THRESHOLD_", "MALLOC_TOP_PAD_")


def _glibc() -> ctypes.CDLL | None:
    """The running C library if it is glibc on Linux, else None."""
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return None
    try:
        libc = ctypes.CDLL(None)
        libc.mallopt.argtypes, libc.mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
        libc.malloc_trim.argtypes, libc.malloc_trim.restype = [ctypes.c_size_t], ctypes.c_int
    except (OSError, AttributeError):
        return None
    return libc


@contextmanager
def keep_freed_memory(*, enabled: bool = True, device_type: str = "cpu") -> Iterator[bool]:
    """Within the block, big freed blocks stay in the heap for reuse; yields whether it applied.

    Process-wide while it lasts (glibc has one allocator per process), so a program allocating on
    other threads meanwhile keeps its freed memory too; afterwards glibc's defaults are back and the
    free heap is returned to the system.
    """
    user_set = [name for name in _USER_TUNING if name in os.environ]
    libc = _glibc() if enabled and device_type == "cpu" and not user_set else None
    if libc is None or not libc.mallopt(_M_MMAP_MAX, 0):
        yield False
        return
    libc.mallopt(_M_TRIM_THRESHOLD, _NO_TRIM)
    logger.debug("training keeps freed memory in the heap (glibc mmap off, no trimming)")
    try:
        yield True
    finally:
        libc.mallopt(_M_MMAP_MAX, _DEFAULT_MMAP_MAX)
        libc.mallopt(_M_TRIM_THRESHOLD, _DEFAULT_TRIM_THRESHOLD)
        libc.malloc_trim(0)
