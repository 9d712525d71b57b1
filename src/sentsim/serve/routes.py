"""Every route of the server, the checks a request passes before it is queued, and the error shape.

Errors are always ``{"error": {"message", "type", "code"}}`` (OpenAI's shape) with a status a client
can act on: 401 key, 404 model, 413 too big, 422 malformed, 429 busy (with ``Retry-After``), 503 not
ready. Nothing a client sends produces a stack trace in a response.
"""

from __future__ import annotations

import base64
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import orjson
from fastapi import APIRouter, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from sentsim.inference.calibration import aligned_cosines, calibrated_scores
from sentsim.inference.prompts import resolve_prompt
from sentsim.serve import schemas
from sentsim.serve.engine import Engine
from sentsim.serve.limits import ServeSettings
from sentsim.serve.queue import BatchQueue, InputTooLongError, QueueFullError


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


def error_response(status: int, message: str, *, type: str = "invalid_request_error", code: str | int | None = None,
                   headers: dict[str, str] | None = None, path: str = "") -> JSONResponse:
    """The error body: OpenAI's shape, or Ollama's ``{"error": message}`` on its ``/api/`` routes."""
    body: dict[str, Any] = {"error": message} if path.startswith(OLLAMA_PREFIX) else \
        {"error": {"message": message, "type": type, "code": code}}
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
        problems: dict[str, str] = {}  # one message per field: a str | list union reports each branch
        for item in error.errors():
            place = ".".join(str(part) for part in item.get("loc", ()) if _is_field(part)) or "body"
            message = str(item.get("msg", "invalid")).removeprefix("Value error, ")  # our validators' own words
            problems.setdefault(place, f"{place}: {message}")
        return error_response(422, "; ".join(list(problems.values())[:5]) or "invalid request", code="invalid_request",
                              path=request.url.path)

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


@dataclass
class Service:
    """What the routes share: the settings and, once loaded, the engine and its queue."""

    settings: ServeSettings
    model_name: str | None = None
    engine: Engine | None = None
    queue: BatchQueue | None = None
    status: str = "loading"
    load_error: str | None = None
    created: int = field(default_factory=lambda: int(time.time()))

    def require_ready(self) -> tuple[Engine, BatchQueue]:
        if self.status != "ready" or self.engine is None or self.queue is None:
            message = "the model is still loading" if self.status == "loading" else \
                f"the model failed to load: {self.load_error}"
            raise ServeError(503, message, type="service_unavailable", code=f"model_{self.status}",
                             headers={"Retry-After": "1"})
        return self.engine, self.queue


def service_of(request: Request) -> Service:
    return request.app.state.service


def _check_model(engine: Engine, requested: str | None) -> None:
    if requested is None or requested in (engine.name, Path(engine.name).name):
        return
    raise ServeError(404, f"model {requested!r} is not served here; this server serves {engine.name!r}",
                     type="not_found_error", code="model_not_found")


def _check_inputs(settings: ServeSettings, texts: list[str]) -> None:
    if len(texts) > settings.max_client_batch_size:
        raise ServeError(413, f"{len(texts)} sentences in one request; the limit (max-client-batch-size) is "
                         f"{settings.max_client_batch_size}", code="too_many_inputs")
    for index, text in enumerate(texts):
        if len(text) > settings.max_input_chars:
            raise ServeError(413, f"input {index} has {len(text)} characters; the limit (max-input-chars) is "
                             f"{settings.max_input_chars}", code="input_too_long")


async def embed_texts(service: Service, texts: list[str], *, truncate: bool, model: str | None,
                      prompt_name: str | None = None) -> tuple[np.ndarray, int]:
    """Checks, queues and embeds ``texts``; returns the raw vectors and the tokens they used.

    The prompt ``prompt_name`` names, else the model's default prompt, goes before every text, as
    ``encode`` does it, so served vectors stay the offline ones. Without ``truncate`` an input over
    the model's ``max_seq_length`` is refused (413); the queue's worker finds that out when it
    tokenises the request, before any of it is embedded.
    """
    engine, queue = service.require_ready()
    _check_model(engine, model)
    _check_inputs(service.settings, texts)
    prompts = getattr(engine, "prompts", None) or {}  # engines written before prompts were served have none
    try:
        prompt = resolve_prompt(prompts, getattr(engine, "default_prompt_name", None), None, prompt_name)
    except ValueError:
        raise ServeError(422, f"prompt_name {prompt_name!r} is not among the model's prompts {sorted(prompts)}",
                         code="unknown_prompt") from None
    if prompt:
        texts = [prompt + text for text in texts]
    try:
        return await queue.embed(texts, truncate=truncate)
    except QueueFullError as error:
        raise ServeError(429, str(error), type="rate_limit_error", code="queue_full",
                         headers={"Retry-After": str(error.retry_after)}) from None
    except InputTooLongError as error:
        raise ServeError(413, f"input {error.index} has {error.tokens} tokens; the model's limit (max_seq_length) "
                         f"is {error.limit}. Send \"truncate\": true to cut it to {error.limit} tokens",
                         code="input_too_long") from None


def check_dimensions(service: Service, dimensions: int | None) -> None:
    """422 when a request asks for more dimensions than the model's embeddings have."""
    dimension = service.engine.embedding_dimension if service.engine else None
    if dimensions is not None and dimension is not None and dimensions > dimension:
        raise ServeError(422, f"dimensions is {dimensions}, but the model's embeddings have {dimension}",
                         code="invalid_dimensions")


async def pair_cosines(service: Service, firsts: list[str], seconds: list[str], *, truncate: bool, model: str | None,
                       prompt_name: str | None = None) -> tuple[np.ndarray, int]:
    """The cosine of each pair ``(firsts[i], seconds[i])`` and the tokens used, every distinct text embedded once.

    The request limit counts both sides of every pair, repeats included, so a client cannot get round
    it by repeating one text; a text that occurs on both sides (or in many pairs) is embedded once.
    """
    _check_inputs(service.settings, firsts + seconds)
    unique = list(dict.fromkeys([*firsts, *seconds]))
    vectors, tokens = await embed_texts(service, unique, truncate=truncate, model=model, prompt_name=prompt_name)
    position = {text: index for index, text in enumerate(unique)}
    unit = unit_length(vectors).astype(np.float64)
    return aligned_cosines(unit[[position[t] for t in firsts]], unit[[position[t] for t in seconds]]), tokens


def unit_length(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)


def as_list(value: str | list[str]) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": schemas.ErrorResponse} for status in (401, 404, 413, 422, 429, 503)
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
    vectors, tokens = await embed_texts(service, texts, truncate=body.truncate, model=body.model)
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
async def list_models(request: Request) -> schemas.ModelList:
    service = service_of(request)
    engine, _ = service.require_ready()
    card = schemas.ModelCard(id=engine.name, created=service.created, max_seq_length=engine.max_seq_length,
                             embedding_dimension=engine.embedding_dimension,
                             calibrated=engine.calibration is not None)
    return schemas.ModelList(data=[card])


@router.get("/v1/models/{model:path}", response_model=schemas.ModelCard, responses=ERRORS, tags=["openai"])
async def retrieve_model(model: str, request: Request) -> schemas.ModelCard:
    """OpenAI's ``models.retrieve``: the served model's card, 404 for any other id."""
    engine, _ = service_of(request).require_ready()
    _check_model(engine, model)
    return (await list_models(request)).data[0]


@router.post("/embed", response_model=list[list[float]], responses=ERRORS, tags=["tei"])
async def embed(body: schemas.EmbedRequest, request: Request) -> Response:
    """Text-embeddings-inference-compatible: a list of vectors, unit length unless ``normalize`` is false."""
    vectors, _ = await embed_texts(service_of(request), as_list(body.inputs), truncate=body.truncate, model=None,
                              prompt_name=body.prompt_name)
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
    else:
        firsts = [body.inputs.source_sentence] * len(body.inputs.sentences)
        seconds = list(body.inputs.sentences)
    cosines, tokens = await pair_cosines(service, firsts, seconds, truncate=body.cut, model=body.model,
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
                                            prompt_name=body.prompt_name), request)


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
        "model_id": engine.name, "model_sha": None, "model_dtype": "float32",
        "model_type": {"embedding": {"pooling": _pooling(engine)}},
        "max_concurrent_requests": settings.max_concurrent_requests,
        "max_input_length": engine.max_seq_length, "max_batch_tokens": settings.max_batch_tokens,
        "max_batch_requests": None, "max_client_batch_size": settings.max_client_batch_size,
        "auto_truncate": False, "tokenization_workers": 1, "version": __version__, "sha": None, "docker_label": None,
        "embedding_dimension": engine.embedding_dimension})


@router.get("/health", response_model=schemas.Health, tags=["ops"])
async def health() -> schemas.Health:
    """Alive: the process answers (the model may still be loading; see /ready)."""
    return schemas.Health()


@router.get("/ready", response_model=schemas.Readiness, responses={503: {"model": schemas.Readiness}}, tags=["ops"])
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
