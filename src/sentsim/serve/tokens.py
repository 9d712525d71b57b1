"""text-embeddings-inference's ``POST /tokenize`` and ``POST /decode``: the served model's tokenizer over HTTP.

Clients written for TEI count tokens and cut long documents with these before they embed (a chunker
that keeps each piece under ``max_input_length``); they must see the tokens the server will embed,
prompt included, which only the server's own tokenizer can tell them. Both run the Rust tokenizer in a
worker thread, never on the event loop, and answer in TEI's shapes.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BeforeValidator, Field
from starlette.concurrency import run_in_threadpool

from sentsim.serve.routes import ERRORS, ServeError
from sentsim.serve.schemas import AnyText, TeiBody, non_empty
from sentsim.serve.service import check_inputs, input_names, request_prompt, service_of

router = APIRouter()

#: One id list or several, as TEI's ``InputIds``: non-negative whole numbers.
TokenIds = Annotated[list[Annotated[int, Field(strict=True, ge=0)]], Field(min_length=1)]


class TokenizeRequest(TeiBody):
    """TEI's ``/tokenize`` body: one text or a list (the empty text included: it has its special tokens)."""

    inputs: Annotated[AnyText | list[AnyText], BeforeValidator(non_empty)]
    add_special_tokens: bool = Field(True, description="include [CLS], [SEP] and the like, as embedding does")
    prompt_name: str | None = Field(None, description="one of the model's saved prompts, put before every input "
                                                      "(default: the model's default prompt, as /embed does)")


class DecodeRequest(TeiBody):
    """TEI's ``/decode`` body: one list of token ids or a list of them."""

    ids: TokenIds | Annotated[list[TokenIds], Field(min_length=1)]
    skip_special_tokens: bool = Field(True, description="leave [CLS], [SEP] and the like out of the text")


def _tokenizer(request: Request) -> Any:
    engine, _ = service_of(request).require_ready()
    tokenizer = getattr(engine, "tokenize", None)
    if not hasattr(tokenizer, "tokens"):
        raise ServeError(501, "this engine does not expose its tokenizer", type="api_error", code="not_implemented")
    return engine, tokenizer


@router.post("/tokenize", responses=ERRORS, tags=["tei"])
async def tokenize(body: TokenizeRequest, request: Request) -> JSONResponse:
    """Each input's tokens (TEI's ``SimpleToken``: ``id``, ``text``, ``special``, ``start``, ``stop``, the span
    in characters), uncut, with the prompt /embed would put before it."""
    engine, tokenizer = _tokenizer(request)
    texts = [body.inputs] if isinstance(body.inputs, str) else list(body.inputs)
    check_inputs(service_of(request).settings, texts, input_names(len(texts)))
    prompt = request_prompt(engine, body.prompt_name)
    if prompt:
        texts = [prompt + text for text in texts]
    tokens = await run_in_threadpool(tokenizer.tokens, texts, add_special_tokens=body.add_special_tokens)
    return JSONResponse(tokens)


@router.post("/decode", responses=ERRORS, tags=["tei"])
async def decode(body: DecodeRequest, request: Request) -> JSONResponse:
    """Each list of ids back to text (a list of strings, one per list of ids, as TEI answers)."""
    _, tokenizer = _tokenizer(request)
    rows = [body.ids] if body.ids and isinstance(body.ids[0], int) else body.ids
    settings = service_of(request).settings
    if len(rows) > settings.max_client_batch_size:
        raise ServeError(413, f"{len(rows)} id lists in one request; the limit (max-client-batch-size) is "
                         f"{settings.max_client_batch_size}", code="too_many_inputs")
    try:
        texts = await run_in_threadpool(tokenizer.decode, rows, skip_special_tokens=body.skip_special_tokens)
    except ValueError as error:
        raise ServeError(422, str(error), code="invalid_token_id") from None
    return JSONResponse(texts)
