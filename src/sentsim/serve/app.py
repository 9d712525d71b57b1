"""The FastAPI application: routes, error shape, guards, metrics, and the model load in the background.

The model loads on a thread after the server has started, so ``/health`` answers at once and the
model routes (and ``/ready``) say 503 until it is in; orchestrators can tell "starting" from "dead".
"""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI

from sentsim import __version__
from sentsim.serve import ollama, scoring, tokens
from sentsim.serve.engine import Engine
from sentsim.serve.guards import GuardMiddleware
from sentsim.serve.limits import ServeSettings
from sentsim.serve.metrics import MetricsMiddleware, ServeMetrics
from sentsim.serve.queue import BatchQueue
from sentsim.serve.routes import install_error_handlers, router
from sentsim.serve.service import Service

logger = logging.getLogger(__name__)

EngineLoader = Callable[[], Engine]


def create_app(
    settings: ServeSettings | None = None,
    engine: Engine | None = None,
    *,
    loader: EngineLoader | None = None,
    model_name: str | None = None,
) -> FastAPI:
    """Builds the app over a loaded ``engine``, or over a ``loader`` called on a thread at start-up.

    Args:
        settings: request limits and the API key; defaults to :class:`ServeSettings` ().
        engine: an engine ready to use (tests, embedding the server in another program).
        loader: builds the engine; the app answers 503 on model routes until it returns.
        model_name: the name ``/ready`` reports while the loader runs.
    """
    if (engine is None) == (loader is None):
        raise ValueError("create_app needs exactly one of engine or loader")
    settings = settings or ServeSettings()
    service = Service(settings=settings, model_name=engine.name if engine is not None else model_name)
    metrics = ServeMetrics(frozenset())

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        loading = None
        if engine is not None:
            _attach(service, engine, metrics)
        else:
            loading = asyncio.get_running_loop().run_in_executor(None, _load, service, loader, metrics)
        try:
            yield
        finally:
            if loading is not None and not loading.done():
                logger.warning("shutting down while the model is still loading")
            if service.queue is not None:
                await asyncio.to_thread(service.queue.stop)
            metrics.close()

    app = FastAPI(title="sentsim", version=__version__, lifespan=lifespan, redoc_url=None,
                  description="Sentence embeddings and calibrated 0–5 similarity over a sentsim model.")
    app.state.service = service
    app.state.metrics = metrics
    app.include_router(router)
    app.include_router(ollama.router)
    app.include_router(scoring.router)
    app.include_router(tokens.router)
    metrics.routes = frozenset(getattr(route, "path", "") for route in
                               [*app.routes, *router.routes, *ollama.router.routes, *scoring.router.routes,
                                *tokens.router.routes]) - {""}
    install_error_handlers(app)
    app.add_middleware(GuardMiddleware, settings=settings)
    app.add_middleware(MetricsMiddleware, metrics=metrics)  # added last = outermost: sees 401s and 413s
    return app


def _attach(service: Service, engine: Engine, metrics: ServeMetrics) -> None:
    queue = BatchQueue(engine, max_batch_tokens=service.settings.max_batch_tokens,
                       max_concurrent_requests=service.settings.max_concurrent_requests, observer=metrics)
    queue.start()
    service.engine, service.queue, service.model_name = engine, queue, engine.name
    service.status = "ready"


def _load(service: Service, loader: EngineLoader, metrics: ServeMetrics) -> None:
    try:
        engine = loader()
    except Exception as error:  # reported on /ready and every model route; the process keeps answering
        logger.error("loading the model failed: %s", error)
        service.load_error = str(error)
        service.status = "failed"
        return
    # Everything loaded so far (the model, torch or onnxruntime, their imports) lives as long as the
    # server: freezing it keeps the collector from walking those millions of objects again on every
    # full collection, which took ~5 % of a core under load.
    gc.collect()
    gc.freeze()
    _attach(service, engine, metrics)
    logger.info("model %s loaded (max_seq_length %d, dimension %d)", engine.name, engine.max_seq_length,
                engine.embedding_dimension)
