"""Every route of the server, the checks a request passes before it is queued, and the error shape.

Errors are always ``{"error": {"message", "type", "code"}}`` (OpenAI's shape) with a status a client
can act on: 401 key, 404 model, 413 too big, 422 malformed, 429 busy (with ``Retry-After``), 503 not
ready. Nothing a client sends produces a stack trace in a response.
"""

from __future__ import annotations

import base64
import logging
from typing import Any

import numpy as np
import orjson
from fastapi import APIRouter, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from sentsim.inference.calibration import calibrated_scores
from sentsim.serve import schemas
from sentsim.serve.engine import Engine
from sentsim.serve.service import (
    ServeError,
    as_list,
    check_dimensions,
    check_model,
    embed_texts,
    pair_cosines,
    service_of,
    unit_length,
)


class VectorResponse(Response):
    """JSON for bodies full of vectors: orjson writes numpy float32 rows directly, without ``tolist``."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content, option=orjson.OPT_SERIALIZE_NUMPY)


logger = logging.getLogger(__name__)

#: Routes that answer without an API key: liveness and readiness probes rarely carry secrets and
#: reveal nothing but "up" and "loaded".
OPEN_PATHS = frozenset({"/health", "/ready"})
#: Ollama's routes (``sentsim.serve.ollama``), whose clients read errors as ``{"error": "message"}``.
OLLAMA_PREFIX = "/api/"


def error_response(status: int, message: str, *, type: str = "invalid_request_error", code: str | int | None = None,
                   headers: dict[str, str] | None = None, path: str = "", param: str | None = None) -> JSONResponse:
    """The error body: OpenAI's shape, or Ollama's ``{"error": message}`` on its ``/api/`` routes."""
    body: dict[str, Any] = {"error": message} if path.startswith(OLLAMA_PREFIX) else \
        {"error": {"message": message, "type": type, "param": param, "code": code}}
    return JSONResponse(body, status_code=status, headers=headers)


_STATUS_TYPES = {401: "authentication_error", 404: "not_found_error", 405: "invalid_request_error",
                 413: "invalid_request_error", 429: "rate_limit_error", 503: "service_unavailable"}


def install_error_handlers(app: FastAPI) -> None:
    """Routes FastAPI's own errors (422, 404, 405) and ours through the one error shape."""

    @app.exception_handler(ServeError)
    async def _serve_error(request: Request, error: ServeError) -> JSONResponse:
        return error_response(error.status, error.message, type=error.type, code=error.code, headers=error.headers,
                              path=request.url.path)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, error: RequestValidationError) -> JSONResponse:
        syntax = next((item for item in error.errors() if item.get("type") == "json_invalid"), None)
        if syntax is not None:  # not JSON at all: 400, as TEI, OpenAI, Ollama and vLLM answer it
            where = next((part for part in syntax.get("loc", ()) if isinstance(part, int)), None)
            reason = (syntax.get("ctx") or {}).get("error") or syntax.get("msg", "JSON decode error")
            return error_response(400, "the request body is not valid JSON"
                                  + (f" (at character {where}: {reason})" if where is not None else f" ({reason})"),
                                  code="invalid_json", path=request.url.path)
        problems: dict[str, str] = {}  # one message per field: a str | list union reports each branch
        for item in error.errors():
            place = ".".join(str(part) for part in item.get("loc", ()) if _is_field(part)) or "body"
            message = str(item.get("msg", "invalid")).removeprefix("Value error, ")  # our validators' own words
            problems.setdefault(place, f"{place}: {message}")
        return error_response(422, "; ".join(list(problems.values())[:5]) or "invalid request", code="invalid_request",
                              path=request.url.path, param=next(iter(problems), None))

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, error: StarletteHTTPException) -> JSONResponse:
        message = error.detail if isinstance(error.detail, str) else "request failed"
        return error_response(error.status_code, message, type=_STATUS_TYPES.get(error.status_code, "api_error"),
                              code=error.status_code, headers=getattr(error, "headers", None), path=request.url.path)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, error: Exception) -> JSONResponse:
        logger.error("unhandled error: %r", error, exc_info=error)
        return error_response(500, "internal server error", type="server_error", code="internal_error",
                              path=request.url.path)


def _is_field(part: object) -> bool:
    """Field names and list positions of an error location, not pydantic's union tags or ``body``."""
    return isinstance(part, int) or (isinstance(part, str) and part.isidentifier() and part != "body")


ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": schemas.ErrorResponse} for status in (400, 401, 404, 413, 422, 429, 503)
}
router = APIRouter()


@router.post("/v1/embeddings", response_model=schemas.EmbeddingsResponse, responses=ERRORS, tags=["openai"])
@router.post("/embeddings", response_model=schemas.EmbeddingsResponse, responses=ERRORS, tags=["openai"],
             summary="Create Embeddings (without /v1, as Infinity serves it and base URLs without /v1 reach it)")
async def create_embeddings(body: schemas.EmbeddingsRequest, request: Request) -> Response:
    """OpenAI-compatible embeddings: unit-length vectors, optionally shortened and base64-encoded."""
    service = service_of(request)
    texts = as_list(body.input)
    check_dimensions(service, body.dimensions)
    vectors, tokens = await embed_texts(request, texts, truncate=body.truncate, model=body.model)
    if body.dimensions is not None:
        vectors = vectors[:, : body.dimensions]
    vectors = unit_length(vectors).astype("<f4", copy=False)
    if body.encoding_format == "base64":
        encoded: list[Any] = [base64.b64encode(row.tobytes()).decode("ascii") for row in vectors]
    else:
        encoded = list(vectors)
    data = [{"object": "embedding", "index": index, "embedding": row} for index, row in enumerate(encoded)]
    usage = {"prompt_tokens": tokens, "total_tokens": tokens}
    return VectorResponse({"object": "list", "data": data, "model": service.engine.name, "usage": usage})


@router.get("/v1/models", response_model=schemas.ModelList, responses=ERRORS, tags=["openai"])
@router.get("/models", response_model=schemas.ModelList, responses=ERRORS, tags=["openai"],
            summary="List Models (without /v1, for base URLs without it)")
async def list_models(request: Request) -> schemas.ModelList:
    service = service_of(request)
    engine, _ = service.require_ready()
    card = schemas.ModelCard(id=engine.name, created=service.created, max_seq_length=engine.max_seq_length,
                             embedding_dimension=engine.embedding_dimension,
                             calibrated=engine.calibration is not None)
    return schemas.ModelList(data=[card])


@router.get("/v1/models/{model:path}", response_model=schemas.ModelCard, responses=ERRORS, tags=["openai"])
@router.get("/models/{model:path}", response_model=schemas.ModelCard, responses=ERRORS, tags=["openai"],
            summary="Retrieve Model (without /v1)")
async def retrieve_model(model: str, request: Request) -> schemas.ModelCard:
    """OpenAI's ``models.retrieve``: the served model's card, 404 for any other id."""
    engine, _ = service_of(request).require_ready()
    check_model(engine, model)
    return (await list_models(request)).data[0]


@router.post("/embed", response_model=list[list[float]], responses=ERRORS, tags=["tei"])
async def embed(body: schemas.EmbedRequest, request: Request) -> Response:
    """Text-embeddings-inference-compatible: a list of vectors, unit length unless ``normalize`` is false."""
    check_dimensions(service_of(request), body.dimensions)
    vectors, _ = await embed_texts(request, as_list(body.inputs), truncate=body.truncate, model=None,
                                   prompt_name=body.prompt_name)
    if body.dimensions is not None:
        vectors = vectors[:, : body.dimensions]
    if body.normalize:
        vectors = unit_length(vectors)
    return VectorResponse(np.ascontiguousarray(vectors, dtype=np.float32))


@router.post("/similarity", response_model=schemas.SimilarityResponse | list[float], responses=ERRORS,
             tags=["sentsim", "tei"])
async def similarity(body: schemas.SimilarityRequest, request: Request) -> Response:
    """Cosine and calibrated 0–5 score per pair; TEI's ``inputs`` form returns TEI's list of cosines."""
    service = service_of(request)
    if body.pairs is not None:
        firsts = [pair.sentence1 for pair in body.pairs]
        seconds = [pair.sentence2 for pair in body.pairs]
        first_names = [f"pairs[{index}].sentence1" for index in range(len(firsts))]
        second_names = [f"pairs[{index}].sentence2" for index in range(len(seconds))]
    else:
        firsts = [body.inputs.source_sentence] * len(body.inputs.sentences)
        seconds = list(body.inputs.sentences)
        first_names = ["source_sentence"] * len(firsts)
        second_names = [f"sentences[{index}]" for index in range(len(seconds))]
    sent = 1 + len(seconds) if body.inputs is not None else None  # TEI's form sends its source sentence once
    cosines, tokens = await pair_cosines(request, firsts, seconds, truncate=body.cut, model=body.model,
                                         first_names=first_names, second_names=second_names, sent=sent,
                                         prompt_name=body.parameters.prompt_name if body.parameters else None)
    if body.inputs is not None:
        return JSONResponse(cosines.tolist())
    calibrated = calibrated_scores(cosines, service.engine.calibration)
    scores = calibrated.tolist() if calibrated is not None else [None] * len(cosines)
    data = [{"index": index, "cosine": float(cosine), "score": score}
            for index, (cosine, score) in enumerate(zip(cosines.tolist(), scores, strict=True))]
    usage = {"prompt_tokens": tokens, "total_tokens": tokens}
    return JSONResponse({"object": "list", "data": data, "model": service.engine.name, "usage": usage})


@router.post("/", response_model=list[list[float]] | list[float], responses=ERRORS, tags=["tei"])
async def tei_compatible(body: schemas.RootRequest, request: Request) -> Response:
    """text-embeddings-inference's ``POST /``: ``/embed`` for texts, ``/similarity`` for its similarity form.

    huggingface_hub's ``InferenceClient(SERVER_URL).feature_extraction`` and ``sentence_similarity``
    post here, as they would to a TEI server.
    """
    if isinstance(body.inputs, schemas.SourceAndSentences):
        parameters = body.parameters or schemas.TeiParameters(prompt_name=body.prompt_name)
        return await similarity(schemas.SimilarityRequest(inputs=body.inputs, truncate=body.truncate,
                                                          parameters=parameters), request)
    return await embed(schemas.EmbedRequest(inputs=body.inputs, normalize=body.normalize, truncate=body.truncate,
                                            prompt_name=body.prompt_name, dimensions=body.dimensions), request)


def _pooling(engine: Engine) -> str:
    """The pooling mode in TEI's words (``cls``, ``mean``, ...), from either engine's model; ``mean`` if unknown."""
    model = getattr(engine, "model", None) or getattr(engine, "encoder", None)
    pooling = getattr(model, "pooling", None)
    modes = getattr(pooling, "modes", None) or getattr(getattr(model, "config", None), "pooling_modes", None)
    return "+".join(modes) if modes else "mean"


@router.get("/info", responses=ERRORS, tags=["tei"])
async def info(request: Request) -> JSONResponse:
    """text-embeddings-inference's ``GET /info``: the served model and the server's limits, in TEI's field names."""
    from sentsim import __version__

    service = service_of(request)
    engine, _ = service.require_ready()
    settings = service.settings
    return JSONResponse({
        "model_id": engine.name, "model_sha": None, "model_dtype": getattr(engine, "dtype", "float32"),
        "model_type": {"embedding": {"pooling": _pooling(engine)}},
        "max_concurrent_requests": settings.max_concurrent_requests,
        "max_input_length": engine.max_seq_length, "max_batch_tokens": settings.max_batch_tokens,
        "max_batch_requests": None, "max_client_batch_size": settings.max_client_batch_size,
        "auto_truncate": False, "tokenization_workers": 1, "version": __version__, "sha": None, "docker_label": None,
        "embedding_dimension": engine.embedding_dimension})


@router.get("/health", response_model=schemas.Health, tags=["ops"])
@router.head("/health", include_in_schema=False)
async def health() -> schemas.Health:
    """Alive: the process answers (the model may still be loading; see /ready)."""
    return schemas.Health()


@router.get("/ready", response_model=schemas.Readiness, responses={503: {"model": schemas.Readiness}}, tags=["ops"])
@router.head("/ready", include_in_schema=False)
async def ready(request: Request) -> Response:
    """200 once the model is loaded and the queue runs; 503 while loading or after a failed load."""
    service = service_of(request)
    body = {"status": service.status, "model": service.model_name}
    return JSONResponse(body, status_code=200 if service.status == "ready" else 503)


@router.get("/metrics", response_class=Response, responses={401: {"model": schemas.ErrorResponse}}, tags=["ops"])
async def metrics(request: Request) -> Response:
    """Prometheus text format."""
    content, media_type = request.app.state.metrics.render()
    return Response(content, media_type=media_type)
