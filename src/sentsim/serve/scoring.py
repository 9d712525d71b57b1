"""Pair scoring and reranking in the API shapes other servers use: vLLM's ``/score``, and ``/rerank``
as vLLM, Jina and Cohere (``documents``) or text-embeddings-inference (``texts``) define it.

Code written for those servers (vLLM's examples, ``cohere.ClientV2(base_url=...).rerank``, LangChain's
and LlamaIndex's Jina / Cohere / TEI rerankers) points its base URL here and works unchanged. A
bi-encoder scores a pair by the cosine of the two embeddings, as vLLM does for embedding models; the
texts are embedded once each, through the same queue, limits and prompt as ``/v1/embeddings``. Where
the model is calibrated, ``/similarity`` gives the 0–5 STS score as well; these routes give the
cosine, which is what their clients sort and threshold on.
"""

from __future__ import annotations

import time
import uuid

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, field_validator, model_validator

from sentsim.serve.routes import ERRORS
from sentsim.serve.schemas import DIRECTION_HELP, Direction, TeiBody, Text, refuse_token_ids
from sentsim.serve.service import ServeError, Service, as_list, pair_cosines, service_of

router = APIRouter()


class ScoreRequest(BaseModel):
    """vLLM's ``POST /score`` body: ``text_1`` against ``text_2``, 1:1, 1:N (one ``text_1``) or N:N (zipped)."""

    model: str | None = Field(None, description="the served model (its name or folder name); omitted: that one")
    text_1: Text | list[Text] = Field(description="a text, or a list of texts")
    text_2: Text | list[Text] = Field(description="a text, or a list of texts (as long as text_1 unless it has one)")
    truncate_prompt_tokens: int | None = Field(
        None, ge=-1, description="-1 (or at least the model's max_seq_length): cut longer inputs there; "
                                 "omitted: refuse them with 413")
    truncate: bool = Field(False, description="sentsim's and TEI's spelling: cut inputs over max_seq_length")
    priority: int = Field(0, description="accepted for vLLM compatibility; requests are served in arrival order")

    @field_validator("text_1", "text_2", mode="before")
    @classmethod
    def _texts(cls, value: object) -> object:
        return refuse_token_ids(value)


class RerankDocument(BaseModel):
    text: Text


class RerankRequest(TeiBody):
    """``POST /rerank``: vLLM's, Jina's and Cohere's ``documents`` form, or TEI's ``texts`` form."""

    model: str | None = Field(None, description="the served model (its name or folder name); omitted: that one")
    query: Text = Field(description="the text the others are ranked against")
    documents: list[Text | RerankDocument] | None = Field(
        None, description="the texts to rank (vLLM / Jina / Cohere), as strings or {\"text\": ...}")
    texts: list[Text] | None = Field(None, description="the texts to rank (text-embeddings-inference)")
    top_n: int | None = Field(None, ge=0, description="return only the best N; 0 or omitted: all")
    return_documents: bool = Field(True, description="include each document's text (documents form)")
    return_text: bool = Field(False, description="include each text (TEI's texts form)")
    raw_scores: bool = Field(False, description="accepted for TEI compatibility: a cosine has no activation")
    truncate: bool | None = Field(None, description="cut inputs over max_seq_length tokens instead of refusing them "
                                                    "(413); unset: cut on Cohere's /v2/rerank only")
    truncate_prompt_tokens: int | None = Field(None, ge=-1, description="vLLM's spelling of truncate (-1: cut)")
    max_chunks_per_doc: int | None = Field(None, description="accepted for Cohere compatibility, ignored")
    max_tokens_per_doc: int | None = Field(
        None, ge=1, description="Cohere's cut: at least max_seq_length cuts there (the default on Cohere's path, "
                                "/v2/rerank, as Cohere cuts long documents itself); smaller is refused")
    truncation_direction: Direction = Field("Right", description=DIRECTION_HELP)

    @field_validator("query", "texts", mode="before")
    @classmethod
    def _texts(cls, value: object) -> object:
        return refuse_token_ids(value)

    @model_validator(mode="after")
    def _one_list(self) -> RerankRequest:
        if (self.documents is None) == (self.texts is None):
            raise ValueError("send the texts to rank as either documents (vLLM, Jina, Cohere) or texts (TEI)")
        return self

    def candidates(self) -> list[str]:
        if self.texts is not None:
            return list(self.texts)
        return [item if isinstance(item, str) else item.text for item in self.documents or []]


class ScoreData(BaseModel):
    index: int
    object: str = "score"
    score: float


class Usage(BaseModel):
    prompt_tokens: int
    total_tokens: int
    completion_tokens: int = 0


class ScoreResponse(BaseModel):
    id: str
    object: str = "list"
    created: int
    model: str
    data: list[ScoreData]
    usage: Usage


class RerankResult(BaseModel):
    index: int
    relevance_score: float = Field(description="the cosine of the document with the query")
    document: RerankDocument | None = None


class RerankResponse(BaseModel):
    """The documents form's answer (vLLM / Jina / Cohere); the texts form answers a list of TeiRank."""

    id: str
    model: str
    results: list[RerankResult]
    usage: dict[str, int]
    meta: dict[str, dict[str, int]] | None = None


class TeiRank(BaseModel):
    index: int
    score: float
    text: str | None = None


def _truncation(service: Service, tokens: int | None, *, name: str = "truncate_prompt_tokens",
                default: bool = False) -> bool:
    """vLLM's ``truncate_prompt_tokens`` (or Cohere's ``max_tokens_per_doc``) as the queue's switch: it cuts
    at the model's limit, nowhere else; ``default`` when the request does not say."""
    if tokens is None:
        return default
    limit = service.engine.max_seq_length if service.engine else None
    if tokens == -1 or (limit is not None and tokens >= limit):
        return True
    advice = "send -1" if name == "truncate_prompt_tokens" else f"send at least {limit}"
    raise ServeError(422, f"{name} {tokens} is below the model's max_seq_length ({limit}); this "
                     f"server cuts only at max_seq_length: {advice}", code="unsupported_truncation")


def _names(field: str, value: str | list) -> list[str]:
    """How a 413 names each text of ``field``: ``field`` for a single string, ``field[i]`` in a list."""
    return [field] if isinstance(value, str) else [f"{field}[{index}]" for index in range(len(value))]


def _usage(tokens: int) -> dict[str, int]:
    return {"prompt_tokens": tokens, "total_tokens": tokens, "completion_tokens": 0}


@router.post("/score", response_model=ScoreResponse, responses=ERRORS, tags=["vllm"])
@router.post("/v1/score", response_model=ScoreResponse, responses=ERRORS, tags=["vllm"],
             summary="Score (vLLM's older path)")
async def score(body: ScoreRequest, request: Request) -> JSONResponse:
    """vLLM's Score API for an embedding model: the cosine of each (text_1, text_2) pair."""
    service = service_of(request)
    firsts, seconds = as_list(body.text_1), as_list(body.text_2)
    if not firsts or not seconds:
        raise ServeError(422, "text_1 and text_2 need at least one text each", code="no_inputs")
    sent = len(firsts) + len(seconds)
    first_names, second_names = _names("text_1", body.text_1), _names("text_2", body.text_2)
    if len(firsts) == 1:
        firsts, first_names = firsts * len(seconds), first_names * len(seconds)
    elif len(firsts) != len(seconds):
        raise ServeError(422, f"text_1 has {len(firsts)} texts and text_2 {len(seconds)}: the lengths must be "
                         "1:1, 1:N or N:N", code="mismatched_inputs")
    truncate = body.truncate or _truncation(service, body.truncate_prompt_tokens)
    cosines, tokens = await pair_cosines(request, firsts, seconds, truncate=truncate, model=body.model,
                                         first_names=first_names, second_names=second_names, sent=sent)
    data = [{"index": index, "object": "score", "score": value} for index, value in enumerate(cosines.tolist())]
    return JSONResponse({"id": f"score-{uuid.uuid4().hex}", "object": "list", "created": int(time.time()),
                         "model": service.engine.name, "data": data, "usage": _usage(tokens)})


@router.post("/rerank", response_model=RerankResponse | list[TeiRank], responses=ERRORS, tags=["vllm", "tei"])
@router.post("/v1/rerank", response_model=RerankResponse | list[TeiRank], responses=ERRORS, tags=["vllm"],
             summary="Rerank (Jina's path)")
@router.post("/v2/rerank", response_model=RerankResponse | list[TeiRank], responses=ERRORS, tags=["vllm"],
             summary="Rerank (Cohere's path)")
async def rerank(body: RerankRequest, request: Request) -> JSONResponse:
    """The candidates, best first, scored by their cosine with the query; ``top_n`` keeps the best N."""
    service = service_of(request)
    candidates = body.candidates()
    # Cohere cuts long documents itself (max_tokens_per_doc, 4096 by default), and its client cannot ask to:
    # on Cohere's path over-long texts are cut at max_seq_length unless the request says otherwise.
    truncate = bool(body.truncate) or _truncation(service, body.truncate_prompt_tokens) or \
        _truncation(service, body.max_tokens_per_doc, name="max_tokens_per_doc",
                    default=request.url.path == "/v2/rerank" and body.truncate is None)
    # With no candidates nothing is embedded, but readiness, the model name and the limits are still checked.
    field = "texts" if body.texts is not None else "documents"
    cosines, tokens = await pair_cosines(request, [body.query] * len(candidates), candidates, truncate=truncate,
                                         model=body.model, first_names=["query"] * len(candidates),
                                         second_names=_names(field, candidates),
                                         sent=1 + len(candidates))
    scores = cosines.tolist()
    order = sorted(range(len(scores)), key=lambda index: (-scores[index], index))  # ties keep request order
    if body.top_n:
        order = order[: body.top_n]
    if body.texts is not None:  # TEI's shape: a bare list
        return JSONResponse([{"index": index, "score": scores[index],
                              **({"text": candidates[index]} if body.return_text else {})} for index in order])
    results = [{"index": index, "relevance_score": scores[index],
                **({"document": {"text": candidates[index]}} if body.return_documents else {})} for index in order]
    return JSONResponse({"id": f"rerank-{uuid.uuid4().hex}", "model": service.engine.name, "results": results,
                         "usage": {"total_tokens": tokens}, "meta": {"billed_units": {"search_units": 1}}})

