"""Dynamic batching: concurrent requests merged into token-budgeted batches on one worker thread.

Why one thread: torch (and onnxruntime) already spread one forward over every core; two forwards at
once would fight for the same cores and both get slower. So the event loop only queues work, and a
single worker thread per model runs the forwards back to back. While it runs one batch the next one
fills up, which is where the throughput over one-request-at-a-time comes from.

Fairness: batches are filled round-robin, one sentence per waiting request per turn, so a request
with thousands of sentences is split across many batches and a small request that arrives behind it
rides in the very next batch instead of waiting for the whole big one.
"""

from __future__ import annotations

import asyncio
import logging
import math
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from sentsim.serve.engine import Engine

logger = logging.getLogger(__name__)


class QueueFullError(Exception):
    """Too many requests queued or running; the client should retry after ``retry_after`` seconds."""

    def __init__(self, retry_after: int, limit: int) -> None:
        self.retry_after = retry_after
        self.limit = limit
        super().__init__(f"the server is at its limit of {limit} concurrent requests; retry in {retry_after} s")


class BatchObserver(Protocol):
    """Where the queue reports what it does (the Prometheus metrics implement it)."""

    def observe_batch(self, sentences: int, tokens: int, seconds: float) -> None: ...

    def set_queue_depth(self, requests: int) -> None: ...


@dataclass(eq=False)
class _Job:
    """One request's sentences, the vectors filled in so far, and the future its handler awaits."""

    texts: Sequence[str]
    tokens: Sequence[int]
    future: asyncio.Future
    loop: asyncio.AbstractEventLoop
    results: np.ndarray
    next_index: int = 0
    remaining: int = field(init=False)

    def __post_init__(self) -> None:
        self.remaining = len(self.texts)


class BatchQueue:
    """Queues embedding work for one engine and runs it on a single worker thread."""

    def __init__(
        self,
        engine: Engine,
        *,
        max_batch_tokens: int,
        max_concurrent_requests: int,
        observer: BatchObserver | None = None,
    ) -> None:
        self.engine = engine
        self.max_batch_tokens = max_batch_tokens
        self.max_concurrent_requests = max_concurrent_requests
        self.observer = observer
        self._waiting: deque[_Job] = deque()
        self._condition = threading.Condition()
        self._stopping = False
        self._in_flight = 0  # touched on the event loop only
        self._queued_tokens = 0
        self._tokens_per_second = 0.0
        self._thread = threading.Thread(target=self._work, name=f"sentsim-batch-{engine.name}", daemon=True)

    # -- lifecycle --------------------------------------------------------------------------------
    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float | None = 30.0) -> None:
        """Finishes the queued work, then ends the worker thread."""
        with self._condition:
            self._stopping = True
            self._condition.notify_all()
        if self._thread.is_alive():
            self._thread.join(timeout)

    @property
    def in_flight(self) -> int:
        return self._in_flight

    # -- the event-loop side ------------------------------------------------------------------------
    async def embed(self, texts: Sequence[str], tokens: Sequence[int]) -> np.ndarray:
        """Embeddings of ``texts`` in order; ``tokens`` are their (already truncated) token counts.

        Raises:
            QueueFullError: when ``max_concurrent_requests`` requests are already queued or running.
        """
        if not texts:
            return np.empty((0, self.engine.embedding_dimension), dtype=np.float32)
        if self._in_flight >= self.max_concurrent_requests:
            raise QueueFullError(self._retry_after(), self.max_concurrent_requests)
        loop = asyncio.get_running_loop()
        job = _Job(texts, tokens, loop.create_future(), loop,
                   np.empty((len(texts), self.engine.embedding_dimension), dtype=np.float32))
        self._in_flight += 1
        job.future.add_done_callback(self._finished)
        with self._condition:
            if self._stopping:
                job.future.cancel()
                raise QueueFullError(1, self.max_concurrent_requests)
            self._waiting.append(job)
            self._queued_tokens += sum(tokens)
            self._condition.notify()
        self._report_depth()
        return await job.future

    def _finished(self, _future: asyncio.Future) -> None:
        self._in_flight -= 1
        self._report_depth()

    def _report_depth(self) -> None:
        if self.observer is not None:
            self.observer.set_queue_depth(self._in_flight)

    def _retry_after(self) -> int:
        """Seconds until the queued work is likely done, from the measured token rate (1 to 60)."""
        if self._tokens_per_second <= 0:
            return 1
        return max(1, min(60, math.ceil(self._queued_tokens / self._tokens_per_second)))

    # -- the worker side ------------------------------------------------------------------------------
    def _work(self) -> None:
        while True:
            with self._condition:
                while not self._waiting and not self._stopping:
                    self._condition.wait()
                if not self._waiting:
                    return
                batch = self._take_batch()
            if batch:
                self._run(batch)

    def _take_batch(self) -> list[tuple[_Job, int]]:
        """Up to ``max_batch_tokens`` tokens of sentences, one per waiting request per turn."""
        batch: list[tuple[_Job, int]] = []
        used = 0
        while self._waiting:
            job = self._waiting[0]
            if job.future.done():  # the client went away: drop the rest of its sentences
                self._waiting.popleft()
                self._queued_tokens -= sum(job.tokens[job.next_index :])
                continue
            cost = job.tokens[job.next_index]
            if batch and used + cost > self.max_batch_tokens:
                break
            batch.append((job, job.next_index))
            used += cost
            job.next_index += 1
            if job.next_index == len(job.texts):
                self._waiting.popleft()
            else:
                self._waiting.rotate(-1)
        self._queued_tokens -= used
        return batch

    def _run(self, batch: list[tuple[_Job, int]]) -> None:
        tokens = sum(job.tokens[index] for job, index in batch)
        started = time.perf_counter()
        try:
            vectors = self.engine.embed([job.texts[index] for job, index in batch])
        except Exception as error:  # a bug or a broken model: fail these requests, keep serving
            logger.exception("embedding a batch of %d sentences failed", len(batch))
            for job in dict.fromkeys(job for job, _ in batch):
                job.loop.call_soon_threadsafe(_fail, job.future, error)
            return
        seconds = time.perf_counter() - started
        rate = tokens / seconds if seconds > 0 else 0.0
        self._tokens_per_second = rate if self._tokens_per_second == 0 else 0.8 * self._tokens_per_second + 0.2 * rate
        if self.observer is not None:
            self.observer.observe_batch(len(batch), tokens, seconds)
        for row, (job, index) in enumerate(batch):
            job.results[index] = vectors[row]
            job.remaining -= 1
            if job.remaining == 0:
                job.loop.call_soon_threadsafe(_succeed, job.future, job.results)


def _succeed(future: asyncio.Future, value: np.ndarray) -> None:
    if not future.done():
        future.set_result(value)


def _fail(future: asyncio.Future, error: BaseException) -> None:
    if not future.done():
        future.set_exception(error)
