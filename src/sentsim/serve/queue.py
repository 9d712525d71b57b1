"""Dynamic batching: concurrent requests merged into token-budgeted batches on the model's runner threads.

The event loop only queues work. Runner threads tokenise it, cut it into batches and run the
forwards; while one batch runs the next one fills up, which is where the throughput over
one-request-at-a-time comes from. How many runners an engine gets is its ``parallel_runs``
(``load_engine`` gives both backends one per core, each forward on its own share of the cores, so
they never fight over them). That is faster under a server's load than one forward over every
core: the event loop takes a slice of a core now and then, and a forward split over every core
waits at each of its barriers for the thread that was preempted, while single-threaded forwards on
separate cores only lose the slice itself.

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

from sentsim.inference.batches import length_sorted_batches
from sentsim.serve.engine import Engine

logger = logging.getLogger(__name__)


class QueueFullError(Exception):
    """Too many requests queued or running; the client should retry after ``retry_after`` seconds."""

    def __init__(self, retry_after: int, limit: int) -> None:
        self.retry_after = retry_after
        self.limit = limit
        super().__init__(f"the server is at its limit of {limit} concurrent requests; retry in {retry_after} s")


class InputTooLongError(Exception):
    """Input ``index`` of a request has ``tokens`` tokens, more than ``limit``, and truncation was not asked for."""

    def __init__(self, index: int, tokens: int, limit: int) -> None:
        self.index = index
        self.tokens = tokens
        self.limit = limit
        super().__init__(f"input {index} has {tokens} tokens; the limit is {limit}")


class BatchObserver(Protocol):
    """Where the queue reports what it does (the Prometheus metrics implement it)."""

    def observe_batch(self, sentences: int, tokens: int, seconds: float) -> None: ...

    def set_queue_depth(self, requests: int) -> None: ...


@dataclass(eq=False)
class _Job:
    """One request's sentences, their token ids once the worker has them, and the future its handler awaits."""

    texts: Sequence[str]
    truncate: bool
    future: asyncio.Future
    loop: asyncio.AbstractEventLoop
    results: np.ndarray
    ids: list[list[int]] = field(default_factory=list)
    next_index: int = 0
    remaining: int = field(init=False)

    def __post_init__(self) -> None:
        self.remaining = len(self.texts)

    @property
    def tokens(self) -> int:
        return sum(len(row) for row in self.ids)


class BatchQueue:
    """Queues embedding work for one engine; ``engine.parallel_runs`` runner threads tokenise it and run the batches."""

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
        self._incoming: deque[_Job] = deque()  # appended on the event loop, under the condition's lock
        self._ready: deque[_Job] = deque()  # tokenised jobs, under the planning lock
        self._condition = threading.Condition()
        self._planned: deque[list[tuple[_Job, int]]] = deque()  # forwards cut, not yet run; planning lock
        self._planning = threading.Lock()  # one runner at a time tokenises and cuts a batch
        self._finishing = threading.Lock()  # results and rates written by several runners
        self._stopping = False
        self._in_flight = 0  # touched on the event loop only
        self._queued_sentences = 0  # under the condition's lock
        self._sentences_per_second = 0.0
        # read once, here: an engine that lacks one fails when the queue is built, not on a runner
        self._forward_size = int(engine.batch_size)
        self._run_overhead = engine.run_overhead
        runners = max(1, int(engine.parallel_runs))
        self._threads = [threading.Thread(target=self._work, name=f"sentsim-batch-{number}-{engine.name}", daemon=True)
                         for number in range(runners)]

    # -- lifecycle --------------------------------------------------------------------------------
    @property
    def runners(self) -> int:
        return len(self._threads)

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop(self, timeout: float | None = 30.0) -> None:
        """Finishes the queued work, then ends the runner threads (waiting up to ``timeout`` in all)."""
        with self._condition:
            self._stopping = True
            self._condition.notify_all()
        deadline = None if timeout is None else time.monotonic() + timeout
        for thread in self._threads:
            if thread.is_alive():
                thread.join(None if deadline is None else max(0.0, deadline - time.monotonic()))

    @property
    def in_flight(self) -> int:
        return self._in_flight

    # -- the event-loop side ------------------------------------------------------------------------
    async def embed(self, texts: Sequence[str], *, truncate: bool = False) -> tuple[np.ndarray, int]:
        """Embeddings of ``texts`` in order, and the tokens they used (after any truncation).

        Raises:
            QueueFullError: when ``max_concurrent_requests`` requests are already queued or running.
            InputTooLongError: when a text is longer than the model's ``max_seq_length`` and
                ``truncate`` is false (nothing of the request is embedded then).
        """
        if not texts:
            return np.empty((0, self.engine.embedding_dimension), dtype=np.float32), 0
        if self._in_flight >= self.max_concurrent_requests:
            raise QueueFullError(self._retry_after(), self.max_concurrent_requests)
        loop = asyncio.get_running_loop()
        job = _Job(texts, truncate, loop.create_future(), loop,
                   np.empty((len(texts), self.engine.embedding_dimension), dtype=np.float32))
        self._in_flight += 1
        job.future.add_done_callback(self._finished)
        with self._condition:
            if self._stopping:
                job.future.cancel()
                raise QueueFullError(1, self.max_concurrent_requests)
            self._incoming.append(job)
            self._queued_sentences += len(texts)
            self._condition.notify()
        self._report_depth()
        vectors = await job.future
        return vectors, job.tokens

    def _finished(self, _future: asyncio.Future) -> None:
        self._in_flight -= 1
        self._report_depth()

    def _report_depth(self) -> None:
        if self.observer is not None:
            self.observer.set_queue_depth(self._in_flight)

    def _retry_after(self) -> int:
        """Seconds until the queued work is likely done, from the measured sentence rate (1 to 60)."""
        if self._sentences_per_second <= 0:
            return 1
        return max(1, min(60, math.ceil(self._queued_sentences / self._sentences_per_second)))

    # -- the worker side ------------------------------------------------------------------------------
    def _work(self) -> None:
        """One runner: plan when nothing is planned, then run the next planned forward."""
        while True:
            with self._condition:
                while not (self._incoming or self._ready or self._planned) and not self._stopping:
                    self._condition.wait()
                if not (self._incoming or self._ready or self._planned):
                    return
            with self._planning:  # outside the condition's lock: the event loop keeps queueing meanwhile
                if not self._planned:
                    self._plan()
                piece = self._planned.popleft() if self._planned else None
                more = bool(self._planned or self._ready)
            if more and len(self._threads) > 1:
                with self._condition:  # another runner may take the next forward while this one runs
                    self._condition.notify()
            if piece:
                self._run(piece)

    def _plan(self) -> None:
        """Tokenises what arrived and cuts the next batch into forwards, fewest padded tokens first.

        Planning one batch at a time keeps fairness: requests that arrive meanwhile join the next
        batch, not the end of a long backlog. Each forward finishes its requests' rows at once, so a
        request whose sentences all landed in the first forward is answered before the batch ends.
        """
        with self._condition:
            arrived = list(self._incoming)
            self._incoming.clear()
        if arrived:
            self._tokenize(arrived)
        batch = self._take_batch()
        if len(self._threads) == 1:  # the engine cuts the whole batch itself, in one call
            if batch:
                self._planned.append(batch)
            return
        lengths = [len(job.ids[index]) for job, index in batch]
        for piece in length_sorted_batches(lengths, self._forward_size, run_overhead=self._run_overhead):
            self._planned.append([batch[position] for position in piece])

    def _tokenize(self, jobs: list[_Job]) -> None:
        """Tokenises every newly arrived request in one call (each call hands the GIL back and forth).

        If that call fails, each request is tokenised alone, so only the one that holds the text the
        tokenizer refuses fails (a 500: the schemas let through nothing a tokenizer is known to refuse).
        """
        texts = [text for job in jobs for text in job.texts]
        try:
            ids, lengths = self.engine.tokenize(texts)
        except Exception as error:  # one request's text the tokenizer refuses must not fail the others
            if len(jobs) > 1:
                for job in jobs:
                    self._tokenize([job])
                return
            logger.exception("tokenizing %d sentences failed", len(texts))
            self._drop(jobs[0], error)
            return
        limit, start = self.engine.max_seq_length, 0
        for job in jobs:
            stop = start + len(job.texts)
            too_long = [(index, length) for index, length in enumerate(lengths[start:stop]) if length > limit]
            if too_long and not job.truncate:
                self._drop(job, InputTooLongError(*too_long[0], limit))
            else:
                job.ids = ids[start:stop]
                self._ready.append(job)
            start = stop

    def _drop(self, job: _Job, error: BaseException) -> None:
        with self._condition:
            self._queued_sentences -= len(job.texts)
        job.loop.call_soon_threadsafe(_fail, job.future, error)

    def _take_batch(self) -> list[tuple[_Job, int]]:
        """Up to ``max_batch_tokens`` tokens of sentences, one per waiting request per turn."""
        batch: list[tuple[_Job, int]] = []
        used = taken = 0
        while self._ready:
            job = self._ready[0]
            if job.future.done():  # the client went away: drop the rest of its sentences
                self._ready.popleft()
                taken += len(job.texts) - job.next_index
                continue
            cost = len(job.ids[job.next_index])
            if batch and used + cost > self.max_batch_tokens:
                break
            batch.append((job, job.next_index))
            used += cost
            taken += 1
            job.next_index += 1
            if job.next_index == len(job.texts):
                self._ready.popleft()
            else:
                self._ready.rotate(-1)
        with self._condition:
            self._queued_sentences -= taken
        return batch

    def _run(self, batch: list[tuple[_Job, int]]) -> None:
        rows = [job.ids[index] for job, index in batch]
        tokens = sum(len(row) for row in rows)
        started = time.perf_counter()
        try:
            vectors = self.engine.embed_tokens(rows)
        except Exception as error:  # a bug or a broken model: fail these requests, keep serving
            logger.exception("embedding a batch of %d sentences failed", len(batch))
            for job in dict.fromkeys(job for job, _ in batch):
                job.loop.call_soon_threadsafe(_fail, job.future, error)
            return
        seconds = time.perf_counter() - started
        rate = len(batch) * len(self._threads) / seconds if seconds > 0 else 0.0  # the runners together
        with self._finishing:
            previous = self._sentences_per_second
            self._sentences_per_second = rate if previous == 0 else 0.8 * previous + 0.2 * rate
            for row, (job, index) in enumerate(batch):
                job.results[index] = vectors[row]
                job.remaining -= 1
                if job.remaining == 0:
                    job.loop.call_soon_threadsafe(_succeed, job.future, job.results)
        if self.observer is not None:
            self.observer.observe_batch(len(batch), tokens, seconds)


def _succeed(future: asyncio.Future, value: np.ndarray) -> None:
    if not future.done():
        future.set_result(value)


def _fail(future: asyncio.Future, error: BaseException) -> None:
    if not future.done():
        future.set_exception(error)
