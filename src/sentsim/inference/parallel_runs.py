"""Batches run side by side, one core each: the ONNX encoder's way of using several cores (no torch here).

An ONNX Runtime session with one intra-op thread per core splits every operator of a forward
across the cores and meets at a barrier after each; a MiniLM forward has some hundred operators on
small matrices, so the cores wait on each other much of the time. Running whole batches at once,
each on one core of a single-threaded session (``session.run`` may be called from several threads,
and hands the GIL back while it runs), leaves nothing to wait for. On 2 Intel Xeon cores with
VNNI the int8 MiniLM file encoded STSb test 1.085× faster by the median alternating round (1,128
→ 1,260 sentences/s, 12 rounds, never slower) and 1.16× in a later, slower hour, with bit-identical
embeddings (``experiments/onnx_side_by_side.py``). A batch's numbers do not depend on the thread
count, so neither do the results.

A lone batch cannot be split without changing what int8 quantises together (``batches``), so the
caller runs it on a session with intra-op threads instead (32 texts: 48 ms, against 83 ms on one core).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import TypeVar

Result = TypeVar("Result")


def run_pieces(pieces: Sequence[list[int]], run: Callable[[list[int]], Result], *,
               workers: int) -> Iterator[tuple[list[int], Result]]:
    """Yields ``(piece, run(piece))`` for every piece, ``workers`` at a time, in the order they finish.

    At most ``2 × workers`` pieces are queued at once, so results are handed over (and can be
    freed) as they come instead of piling up; closing the iterator early, or an exception in a
    piece, cancels what has not started. With one worker or one piece everything runs in the
    calling thread, in order.
    """
    if workers <= 1 or len(pieces) <= 1:
        for piece in pieces:
            yield piece, run(piece)
        return
    executor = ThreadPoolExecutor(max_workers=min(workers, len(pieces)), thread_name_prefix="sentsim-run")
    waiting = iter(pieces)
    in_flight: dict[Future[Result], list[int]] = {}

    def top_up() -> None:
        while len(in_flight) < 2 * workers:
            piece = next(waiting, None)
            if piece is None:
                return
            in_flight[executor.submit(run, piece)] = piece

    try:
        top_up()
        while in_flight:
            done, _ = wait(in_flight, return_when=FIRST_COMPLETED)
            for future in done:
                piece = in_flight.pop(future)
                yield piece, future.result()
            top_up()
    finally:
        executor.shutdown(wait=True, cancel_futures=True)
