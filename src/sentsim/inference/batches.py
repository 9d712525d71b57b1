"""Length-sorted batching, shared by the torch forward and the ONNX backend (no torch here)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

#: Below this many sentences a progress bar is more noise than help.
PROGRESS_THRESHOLD = 2000


def length_sorted_batches(lengths: Sequence[int], batch_size: int) -> Iterator[list[int]]:
    """Index batches, longest first, so each batch pads little and the biggest one comes first."""
    order = sorted(range(len(lengths)), key=lambda index: -lengths[index])
    for start in range(0, len(order), batch_size):
        yield order[start : start + batch_size]
