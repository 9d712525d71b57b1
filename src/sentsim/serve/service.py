"""What every embedding route does before and after the queue: checks, prompts, limits, and giving up on
requests whose client has gone.

Routes name each text the way their client sent it (``documents[3]``, ``text_2[0]``, ``input 5``), so a
413 points at the text to shorten even where the route embeds a de-duplicated list. A request whose
client disconnects while it waits is cancelled: its sentences leave the queue instead of being
embedded for nobody (clients that time out and retry would otherwise multiply the load).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from time import time
from typing import Any, TypeVar

import numpy as np
from fastapi import Request

from sentsim.inference.calibration import aligned_cosines
from sentsim.inference.prompts import resolve_prompt
from sentsim.serve.engine import Engine
from sentsim.serve.limits import ServeSettings
from sentsim.serve.queue import BatchQueue, InputTooLongError, QueueFullError

T = TypeVar("T")


class ServeError(Exception):
    """An error a client caused, already carrying its HTTP status and OpenAI-style type and code."""

    def __init__(self, status: int, message: str, *, type: str = "invalid_request_error", code: str | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.code = code
        self.headers = headers


@dataclass
class Service:
    """What the routes share: the settings and, once loaded, the engine and its queue."""

    settings: ServeSettings
    model_name: str | None = None
    engine: Engine | None = None
    queue: BatchQueue | None = None
    status: str = "loading"
    load_error: str | None = None
    created: int = field(default_factory=lambda: int(time()))

    def require_ready(self) -> tuple[Engine, BatchQueue]:
        if self.status != "ready" or self.engine is None or self.queue is None:
            message = "the model is still loading" if self.status == "loading" else \
                f"the model failed to load: {self.load_error}"
            raise ServeError(503, message, type="service_unavailable", code=f"model_{self.status}",
                             headers={"Retry-After": "1"})
        return self.engine, self.queue


def service_of(request: Request) -> Service:
    return request.app.state.service


def check_model(engine: Engine, requested: str | None) -> None:
    """404 unless ``requested`` is None or names the served model (its name or its folder's name)."""
    if requested is None or requested in (engine.name, Path(engine.name).name):
        return
    raise ServeError(404, f"model {requested!r} is not served here; this server serves {engine.name!r}",
                     type="not_found_error", code="model_not_found")


def check_inputs(settings: ServeSettings, texts: Sequence[str], names: Sequence[str], *,
                  sent: int | None = None) -> None:
    """413 for more texts than ``--max-client-batch-size`` (``sent``: as many as the client sent, when the route
    repeats some, as a rerank pairs its one query with every document) or a text over ``--max-input-chars``."""
    count = len(texts) if sent is None else sent
    if count > settings.max_client_batch_size:
        raise ServeError(413, f"{count} sentences in one request; the limit (max-client-batch-size) is "
                         f"{settings.max_client_batch_size}", code="too_many_inputs")
    for name, text in zip(names, texts, strict=True):
        if len(text) > settings.max_input_chars:
            raise ServeError(413, f"{name} has {len(text)} characters; the limit (max-input-chars) is "
                             f"{settings.max_input_chars}", code="input_too_long")


def input_names(count: int) -> list[str]:
    """``input 0``, ``input 1``, ...: the names of a plain list of texts in error messages."""
    return [f"input {index}" for index in range(count)]


def request_prompt(engine: Any, prompt_name: str | None) -> str | None:
    """The prompt a request's ``prompt_name`` names, else the model's default prompt (None: no prompt);
    422 for a name the model does not have."""
    prompts = getattr(engine, "prompts", None) or {}  # engines written before prompts were served have none
    try:
        return resolve_prompt(prompts, getattr(engine, "default_prompt_name", None), None, prompt_name)
    except ValueError:
        raise ServeError(422, f"prompt_name {prompt_name!r} is not among the model's prompts {sorted(prompts)}",
                         code="unknown_prompt") from None


async def embed_texts(request: Request, texts: list[str], *, truncate: bool, model: str | None,
                      prompt_name: str | None = None, names: Sequence[str] | None = None) -> tuple[np.ndarray, int]:
    """Checks, queues and embeds ``texts``; returns the raw vectors and the tokens they used.

    The prompt ``prompt_name`` names, else the model's default prompt, goes before every text, as
    ``encode`` does it, so served vectors stay the offline ones. Without ``truncate`` an input over
    the model's ``max_seq_length`` is refused (413, naming it by ``names``); the queue's worker finds
    that out when it tokenises the request, before any of it is embedded. If the client disconnects
    first, the work is cancelled.
    """
    service = service_of(request)
    names = input_names(len(texts)) if names is None else names
    engine, queue = service.require_ready()
    check_model(engine, model)
    check_inputs(service.settings, texts, names)
    prompt = request_prompt(engine, prompt_name)
    if prompt and not getattr(engine, "include_prompt", True):
        raise ServeError(422, "the model's pooling leaves a prompt's tokens out (include_prompt: false), which the "
                         "server does not do yet: send requests without a prompt (and serve a copy without a "
                         "default_prompt_name)", code="unsupported_prompt")
    if prompt:
        texts = [prompt + text for text in texts]
    try:
        return await _unless_disconnected(request, queue.embed(texts, truncate=truncate))
    except QueueFullError as error:
        raise ServeError(429, str(error), type="rate_limit_error", code="queue_full",
                         headers={"Retry-After": str(error.retry_after)}) from None
    except InputTooLongError as error:
        raise ServeError(413, f"{names[error.index]} has {error.tokens} tokens; the model's limit (max_seq_length) "
                         f"is {error.limit}. Send \"truncate\": true to cut it to {error.limit} tokens",
                         code="input_too_long") from None


async def _unless_disconnected(request: Request, work: Coroutine[Any, Any, T]) -> T:
    """Awaits ``work``; cancels it (and so its queued job) when the client disconnects first.

    The body has been read by now, so the next ASGI message of this request is ``http.disconnect``:
    either the client went away, or (after the response) the server is done with it.
    """
    task = asyncio.ensure_future(work)
    watcher = asyncio.ensure_future(_disconnect(request))
    try:
        await asyncio.wait({task, watcher}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        watcher.cancel()
    if not task.done():
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        raise ServeError(499, "the client closed the connection", code="client_closed_request")
    return task.result()


async def _disconnect(request: Request) -> None:
    while (await request.receive())["type"] != "http.disconnect":
        pass


def check_dimensions(service: Service, dimensions: int | None) -> None:
    """422 when a request asks for more dimensions than the model's embeddings have."""
    dimension = service.engine.embedding_dimension if service.engine else None
    if dimensions is not None and dimension is not None and dimensions > dimension:
        raise ServeError(422, f"dimensions is {dimensions}, but the model's embeddings have {dimension}",
                         code="invalid_dimensions")


async def pair_cosines(request: Request, firsts: list[str], seconds: list[str], *, truncate: bool,
                       model: str | None, prompt_name: str | None = None, first_names: Sequence[str],
                       second_names: Sequence[str], sent: int | None = None) -> tuple[np.ndarray, int]:
    """The cosine of each pair ``(firsts[i], seconds[i])`` and the tokens used, every distinct text embedded once.

    The request limit counts the texts the client sent (``sent``; by default both sides of every pair),
    repeats included, so a client cannot get round it by repeating one text; a route that pairs one
    text it was sent once with many (a rerank's query) counts it once. A text that occurs on both
    sides (or in many pairs) is embedded once, and an error about it names where it first occurs.
    """
    texts, names = [*firsts, *seconds], [*first_names, *second_names]
    check_inputs(service_of(request).settings, texts, names, sent=sent)
    position: dict[str, int] = {}
    first_names: list[str] = []  # of each distinct text, where it first occurs
    for text, name in zip(texts, names, strict=True):
        if text not in position:
            position[text] = len(position)
            first_names.append(name)
    vectors, tokens = await embed_texts(request, list(position), truncate=truncate, model=model,
                                        prompt_name=prompt_name, names=first_names)
    unit = unit_length(vectors).astype(np.float64)
    return aligned_cosines(unit[[position[t] for t in firsts]], unit[[position[t] for t in seconds]]), tokens


def unit_length(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)


def as_list(value: str | list[str]) -> list[str]:
    return [value] if isinstance(value, str) else list(value)
