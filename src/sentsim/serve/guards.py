"""Checks that run before any route: the API key and the request body size.

They are plain ASGI middleware, not route dependencies, so they cover FastAPI's own routes
(``/docs``, ``/openapi.json``) and refuse an oversized body before anything parses it.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Awaitable, Callable
from typing import Any

from sentsim.serve.limits import ServeSettings
from sentsim.serve.metrics import ASGIApp, Scope
from sentsim.serve.routes import OPEN_PATHS, error_response


class GuardMiddleware:
    """401 without the right bearer token (constant-time compare); 413 for a body over ``payload_limit``."""

    def __init__(self, app: ASGIApp, *, settings: ServeSettings) -> None:
        self.app = app
        self.settings = settings
        self._key = settings.api_key.encode() if settings.api_key else None

    async def __call__(self, scope: Scope, receive: Callable[[], Awaitable[Any]], send: Callable) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        refusal = self._check_key(scope) or self._check_declared_length(scope)
        if refusal is None and scope.get("method") in ("POST", "PUT", "PATCH"):
            body, refusal = await self._read_body(receive, path=scope.get("path", ""))
            if refusal is None:
                scope = _as_json(scope, body)
                receive = _replay(body, receive)
        if refusal is not None:
            await refusal(scope, receive, send)
            return
        await self.app(scope, receive, send)

    def _check_key(self, scope: Scope):
        if self._key is None or scope.get("path") in OPEN_PATHS:
            return None
        header = _header(scope, b"authorization") or b""
        scheme, _, token = header.partition(b" ")
        if scheme.lower() == b"bearer" and hmac.compare_digest(token.strip(), self._key):
            return None
        message = "missing API key: send 'Authorization: Bearer KEY'" if not header else "invalid API key"
        return error_response(401, message, type="authentication_error", code="invalid_api_key",
                              headers={"WWW-Authenticate": "Bearer"}, path=scope.get("path", ""))

    def _check_declared_length(self, scope: Scope):
        declared = _header(scope, b"content-length")
        if declared is None:
            return None
        try:
            length = int(declared)
        except ValueError:
            return error_response(400, "Content-Length is not a number", code="bad_content_length",
                                  path=scope.get("path", ""))
        return self._too_large(length, path=scope.get("path", "")) if length > self.settings.payload_limit else None

    async def _read_body(self, receive: Callable[[], Awaitable[Any]], *, path: str):
        """The whole body, or a 413 as soon as it grows past the limit (whatever Content-Length said)."""
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away mid-body
                return b"", error_response(499, "the client closed the connection", code="client_closed_request",
                                           path=path)
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.settings.payload_limit:
                return b"", self._too_large(size, path=path)
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks), None

    def _too_large(self, size: int, *, path: str):
        return error_response(413, f"request body of {size} bytes or more; the limit (payload-limit) is "
                              f"{self.settings.payload_limit} bytes", code="payload_too_large", path=path)


def _header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope.get("headers", ()):
        if key.lower() == name:
            return value
    return None


def _as_json(scope: Scope, body: bytes) -> Scope:
    """``scope`` with a JSON content type when ``body`` is JSON sent without one: ``curl -d`` sends
    form-urlencoded by default, and every route here takes JSON only, so reading it as JSON is the
    one meaning it can have (instead of "Input should be a valid dictionary")."""
    if b"json" in (_header(scope, b"content-type") or b"").lower() or body.lstrip()[:1] not in (b"{", b"["):
        return scope
    try:
        json.loads(body)
    except ValueError:
        return scope
    headers = [(key, value) for key, value in scope.get("headers", ()) if key.lower() != b"content-type"]
    return {**scope, "headers": [*headers, (b"content-type", b"application/json")]}


def _replay(body: bytes, receive: Callable[[], Awaitable[Any]]) -> Callable[[], Awaitable[Any]]:
    """A ``receive`` that hands the app the body already read, then passes through (disconnects)."""
    sent = False

    async def replay() -> Any:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay
