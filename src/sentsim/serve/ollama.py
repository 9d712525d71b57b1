"""Ollama's embedding API on the same engine: ``/api/embed``, the older ``/api/embeddings``, ``/api/tags``.

Code written for an Ollama server (the ``ollama`` Python client, LangChain's ``OllamaEmbeddings``,
LlamaIndex, Open WebUI) points its base URL here and works unchanged. As in Ollama, ``/api/embed``
returns unit-length vectors and truncates over-long inputs unless ``"truncate": false``, the older
``/api/embeddings`` returns the raw vector of one ``prompt``, and errors are ``{"error": "..."}``.
``model`` is checked against the served model (its name or folder name, ``:latest`` allowed), as
Ollama answers 404 for a model it does not have. ``options`` and ``keep_alive`` are accepted and
ignored: there is one model, always loaded.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import numpy as np
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from pydantic import BaseModel, Field, field_validator

from sentsim.serve.routes import ERRORS, VectorResponse
from sentsim.serve.schemas import AnyText, StrictDimensions, Text, refuse_token_ids
from sentsim.serve.service import as_list, check_dimensions, check_model, embed_texts, service_of, unit_length

router = APIRouter()


def _model_name(requested: str) -> str:
    """Ollama names carry a tag; ``name:latest`` is the served ``name``."""
    return requested.removesuffix(":latest")


class EmbedRequest(BaseModel):
    """Ollama's ``POST /api/embed`` body."""

    model: str = Field(min_length=1, description="the served model's name (or folder name); ':latest' allowed")
    input: AnyText | list[Text] | None = Field(
        None, description="a text or a list of texts; empty or missing: no embeddings (clients preload a model so)")
    truncate: bool = Field(True, description="cut inputs over max_seq_length tokens (Ollama's default); false: 413")
    dimensions: StrictDimensions = Field(None, description="keep the first N dimensions, then re-normalise")
    options: dict[str, Any] | None = Field(None, description="accepted for Ollama compatibility, ignored")
    keep_alive: float | str | None = Field(None, description="accepted for Ollama compatibility, ignored")

    @field_validator("input", mode="before")
    @classmethod
    def _texts(cls, value: object) -> object:
        refuse_token_ids(value)
        if isinstance(value, list) and any(item == "" for item in value):
            raise ValueError("an empty text has nothing to embed")
        return value


class EmbeddingsRequest(BaseModel):
    """Ollama's older ``POST /api/embeddings`` body: one ``prompt``."""

    model: str = Field(min_length=1, description="the served model's name (or folder name); ':latest' allowed")
    prompt: AnyText | None = Field(None, description="the text; empty or missing gives an empty embedding, as Ollama")
    options: dict[str, Any] | None = Field(None, description="accepted for Ollama compatibility, ignored")
    keep_alive: float | str | None = Field(None, description="accepted for Ollama compatibility, ignored")


class EmbedResponse(BaseModel):
    model: str
    embeddings: list[list[float]]
    total_duration: int
    load_duration: int = 0
    prompt_eval_count: int


class EmbeddingsResponse(BaseModel):
    embedding: list[float]


@router.post("/api/embed", response_model=EmbedResponse, responses=ERRORS, tags=["ollama"])
async def embed(body: EmbedRequest, request: Request) -> Response:
    """Ollama's embeddings: unit-length vectors, inputs cut to the model's limit unless truncate is false."""
    started = time.perf_counter_ns()
    service = service_of(request)
    check_dimensions(service, body.dimensions)
    # No input, an empty text or an empty list comes back as no embeddings, as in Ollama (clients load a
    # model that way); the model name is still checked.
    texts = as_list(body.input) if body.input else []
    vectors, tokens = await embed_texts(request, texts, truncate=body.truncate, model=_model_name(body.model))
    if body.dimensions is not None:
        vectors = vectors[:, : body.dimensions]
    unit = np.ascontiguousarray(unit_length(vectors), dtype=np.float32)
    return VectorResponse({"model": body.model, "embeddings": unit, "total_duration": time.perf_counter_ns() - started,
                           "load_duration": 0, "prompt_eval_count": tokens})


@router.post("/api/embeddings", response_model=EmbeddingsResponse, responses=ERRORS, tags=["ollama"])
async def embeddings(body: EmbeddingsRequest, request: Request) -> Response:
    """Ollama's older route: the raw (not normalised) vector of one prompt, cut to the model's limit."""
    service = service_of(request)
    if not body.prompt:
        engine, _ = service.require_ready()
        check_model(engine, _model_name(body.model))
        return JSONResponse({"embedding": []})
    vectors, _ = await embed_texts(request, [body.prompt], truncate=True, model=_model_name(body.model))
    return VectorResponse({"embedding": np.ascontiguousarray(vectors[0], dtype=np.float32)})


@router.get("/", response_class=PlainTextResponse, tags=["ollama"])
@router.head("/", include_in_schema=False)
async def running() -> PlainTextResponse:
    """Ollama's liveness answer on ``GET /`` and ``HEAD /`` (its own CLI's heartbeat, and many clients'
    "is the server up" check); ``POST /`` stays TEI's embed route. Says sentsim, not Ollama."""
    return PlainTextResponse("sentsim is running")


@router.get("/api/tags", tags=["ollama"])
@router.head("/api/tags", include_in_schema=False)
async def tags(request: Request) -> JSONResponse:
    """The one served model, in Ollama's model-list shape (clients list models before choosing one)."""
    service = service_of(request)
    engine, _ = service.require_ready()
    modified = datetime.fromtimestamp(service.created, tz=UTC).isoformat()
    tagged = engine.name if ":" in engine.name.rsplit("/", 1)[-1] else f"{engine.name}:latest"  # Ollama: name:tag
    entry = {"name": tagged, "model": tagged, "modified_at": modified, "size": 0, "digest": "",
             "details": {"format": "sentence-transformers", "family": "sentence-embedding",
                         "parameter_size": "", "quantization_level": ""}}
    return JSONResponse({"models": [entry]})


@router.get("/api/version", tags=["ollama"])
@router.head("/api/version", include_in_schema=False)
async def version() -> JSONResponse:
    """sentsim's version where Ollama's would be (clients probe it to find a server)."""
    from sentsim import __version__

    return JSONResponse({"version": __version__})
