"""``sentsim serve``: the HTTP service over a model (parse → sentsim.serve.server.serve)."""

from __future__ import annotations

import argparse
from typing import Any

from sentsim.cli import common

_LIMITS = {  # option → help; the defaults come from ServeSettings so they are written down once
    "max_batch_tokens": "token budget of one forward pass; concurrent requests are merged up to it",
    "max_client_batch_size": "most sentences in one request (a pair counts as two); more → 413",
    "max_input_chars": "longest accepted input string in characters; longer → 413",
    "payload_limit": "largest request body in bytes; larger → 413",
    "max_concurrent_requests": "requests queued or running at once; one more → 429 with Retry-After",
}


def add_parser(commands: Any) -> None:
    from sentsim.serve.limits import ServeSettings

    serve = common.add_command(
        commands, "serve", help="HTTP service: OpenAI/TEI-compatible embeddings and calibrated similarity",
        description="Serves MODEL over HTTP (FastAPI + uvicorn): POST /v1/embeddings, /embed, /similarity; "
                    "GET /v1/models, /health, /ready, /metrics, /docs. Concurrent requests are batched. "
                    "SIGTERM stops accepting, finishes in-flight requests and exits 0.")
    serve.add_argument("model", help="model folder or name")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0: every interface)")
    serve.add_argument("--port", type=int, default=8000, help="TCP port")
    serve.add_argument("--backend", choices=("torch", "onnx"), default="torch",
                       help="torch, or onnx for a folder written by `sentsim export` (no torch needed)")
    serve.add_argument("--api-key", default=None,
                       help="require 'Authorization: Bearer KEY' on every route but /health and /ready "
                            "(default: $SENTSIM_API_KEY, else no key)")
    defaults = ServeSettings()
    for name, text in _LIMITS.items():
        serve.add_argument(f"--{name.replace('_', '-')}", type=int, default=getattr(defaults, name), help=text)
    serve.add_argument("--runners", type=int, default=None,
                       help="forwards run at once, each on its own thread with an equal share of the cores "
                            "(default: one per physical core, divided among --workers; 1: one forward "
                            "over every core)")
    serve.add_argument("--workers", type=int, default=1,
                       help="server processes, each with its own model copy (on a small CPU keep 1)")
    serve.add_argument("--log-level", default="info", choices=("debug", "info", "warning", "error"),
                       help="uvicorn's and sentsim's log level")


def run(args: argparse.Namespace) -> int:
    from sentsim.serve.limits import ServeSettings
    from sentsim.serve.server import serve

    settings = ServeSettings.with_environment_key(api_key=args.api_key,
                                                  runners=args.runners,
                                                  **{name: getattr(args, name) for name in _LIMITS})
    return serve(args.model, host=args.host, port=args.port, backend=args.backend, settings=settings,
                 workers=args.workers, log_level=args.log_level)
