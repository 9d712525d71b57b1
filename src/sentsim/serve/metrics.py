"""Prometheus metrics of one server process: requests, latency, batches, queue depth, tokens.

Each app gets its own registry, so two apps in one process (tests) never share counters. With
``--workers N`` the workers write their counters to files in ``PROMETHEUS_MULTIPROC_DIR`` (the
parent makes a private folder for them) and ``/metrics`` sums every worker's, whichever one took the
scrape: without it a scrape saw the counts of one worker picked by the kernel, and a rate computed
from successive scrapes jumped between workers.
"""

from __future__ import annotations

import os
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

#: The folder prometheus_client's multi-process mode keeps each process's values in.
MULTIPROCESS_ENV = "PROMETHEUS_MULTIPROC_DIR"

Scope = MutableMapping[str, Any]
ASGIApp = Callable[[Scope, Callable[[], Awaitable[Any]], Callable[[Any], Awaitable[None]]], Awaitable[None]]

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)


class ServeMetrics:
    """The counters, and the text ``GET /metrics`` returns."""

    def __init__(self, routes: frozenset[str]) -> None:
        self.routes = routes
        #: True in a ``--workers N`` worker: values live in shared files, ``render`` sums all workers'.
        self.multiprocess = bool(os.environ.get(MULTIPROCESS_ENV))
        self.registry = CollectorRegistry()
        self.requests = Counter("sentsim_requests", "HTTP requests by route and status",
                                ["route", "status"], registry=self.registry)
        self.latency = Histogram("sentsim_request_seconds", "Request latency by route", ["route"],
                                 buckets=LATENCY_BUCKETS, registry=self.registry)
        self.batch_sentences = Histogram("sentsim_batch_sentences", "Sentences per forward batch",
                                         buckets=BATCH_BUCKETS, registry=self.registry)
        self.batch_seconds = Histogram("sentsim_batch_seconds", "Time of one forward batch",
                                       buckets=LATENCY_BUCKETS, registry=self.registry)
        self.tokens = Counter("sentsim_tokens", "Tokens embedded", registry=self.registry)
        self.queue_depth = Gauge("sentsim_queue_depth", "Requests queued or running", registry=self.registry,
                                 multiprocess_mode="livesum")  # workers: the sum over the live ones

    # -- the BatchObserver the queue reports to ---------------------------------------------------
    def observe_batch(self, sentences: int, tokens: int, seconds: float) -> None:
        self.batch_sentences.observe(sentences)
        self.batch_seconds.observe(seconds)
        self.tokens.inc(tokens)

    def set_queue_depth(self, requests: int) -> None:
        self.queue_depth.set(requests)

    def render(self) -> tuple[bytes, str]:
        if not self.multiprocess:
            return generate_latest(self.registry), CONTENT_TYPE_LATEST
        from prometheus_client import multiprocess

        every_worker = CollectorRegistry()
        multiprocess.MultiProcessCollector(every_worker)
        return generate_latest(every_worker), CONTENT_TYPE_LATEST

    def close(self) -> None:
        """At shutdown: a stopped worker's queue depth no longer counts (its counters still do)."""
        if self.multiprocess:
            from prometheus_client import multiprocess

            multiprocess.mark_process_dead(os.getpid())

    def route_label(self, path: str) -> str:
        """Known routes by name; anything else (404s, scanners) shares one label to bound cardinality."""
        return path if path in self.routes else "other"


class MetricsMiddleware:
    """Counts every response by route and status and times it (outermost, so 401s and 413s count)."""

    def __init__(self, app: ASGIApp, *, metrics: ServeMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        route = self.metrics.route_label(scope.get("path", ""))
        status = {"code": 500}
        started = time.perf_counter()

        async def send_and_record(message: Any) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_record)
        finally:
            self.metrics.requests.labels(route=route, status=str(status["code"])).inc()
            self.metrics.latency.labels(route=route).observe(time.perf_counter() - started)
