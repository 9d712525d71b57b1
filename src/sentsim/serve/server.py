"""Runs the app under uvicorn: one process, or ``--workers N`` processes each with its own model.

On SIGTERM (or Ctrl-C) uvicorn stops accepting connections, lets in-flight requests finish (up to
``GRACEFUL_SECONDS``), runs the app's shutdown (the queue drains), and the process exits with 0.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import shutil
import signal
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path

from sentsim.errors import ConfigError
from sentsim.serve.engine import BACKENDS, load_engine, model_name
from sentsim.serve.limits import ServeSettings
from sentsim.serve.metrics import MULTIPROCESS_ENV

#: How long a stopping server waits for in-flight requests before closing them.
GRACEFUL_SECONDS = 30
#: Where ``--workers N`` hands the options to the worker processes (uvicorn imports the app by name).
OPTIONS_ENV = "SENTSIM_SERVE_OPTIONS"


def build_app(model: str | Path, *, backend: str, settings: ServeSettings, name: str | None = None):
    """The app over ``model``, loaded in the background on the chosen backend; ``name``: the served id."""
    from sentsim.serve.app import create_app

    name = name or model_name(model)
    return create_app(settings, loader=lambda: load_engine(model, backend=backend, name=name,
                                                           batch_size=settings.inner_batch_size,
                                                           runners=settings.runners),
                      model_name=name)


def app_from_environment():
    """uvicorn's factory for ``--workers N``: rebuilds the app from the options the parent stored."""
    options = json.loads(os.environ[OPTIONS_ENV])
    return build_app(options["folder"], backend=options["backend"], settings=ServeSettings(**options["settings"]),
                     name=options["name"])


def serve(
    model: str | Path,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    backend: str = "torch",
    settings: ServeSettings | None = None,
    workers: int = 1,
    log_level: str = "info",
) -> int:
    """Serves ``model`` until SIGTERM or Ctrl-C; returns the exit status (0 after a clean stop)."""
    import uvicorn

    from sentsim.persistence.hub import resolve_model_path
    from sentsim.persistence.model_files import refuse_not_a_model

    settings = settings or ServeSettings()
    if backend not in BACKENDS:
        raise ConfigError(f"backend must be one of {', '.join(BACKENDS)}, not {backend!r}")
    if workers < 1:
        raise ConfigError(f"workers must be at least 1, got {workers}")
    if settings.runners is None and workers > 1:  # N processes share the cores: no oversubscription
        from sentsim.environment import physical_cores

        settings = dataclasses.replace(settings, runners=max(1, physical_cores() // workers))
    _check_port(host, port)
    folder = resolve_model_path(model)  # a wrong path, a run folder or an empty one fails here, before start
    refuse_not_a_model(folder)
    _log_setup(log_level)
    common = {"host": host, "port": port, "log_level": log_level, "timeout_graceful_shutdown": GRACEFUL_SECONDS}
    _keep_exit_status_on_signals()
    if workers == 1:
        app = build_app(folder, backend=backend, settings=settings, name=model_name(model))
        uvicorn.Server(uvicorn.Config(app, **common)).run()
        return 0
    os.environ[OPTIONS_ENV] = json.dumps(
        {"folder": str(folder), "name": model_name(model), "backend": backend,
         "settings": dataclasses.asdict(settings)})
    with _shared_metrics_folder():
        uvicorn.run("sentsim.serve.server:app_from_environment", factory=True, workers=workers, **common)
    return 0


def _check_port(host: str, port: int) -> None:
    """ConfigError (exit 2, one line) for a port out of range or one that cannot be listened on, said before
    the model loads; uvicorn would take 70000 as 70000 - 65536 and announce the number asked for."""
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        raise ConfigError(f"port must be between 1 and 65535, not {port}")
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as error:
        raise ConfigError(f"cannot listen on {host}:{port}: {error.strerror or error}") from None
    family, kind, protocol, _, address = infos[0]
    with socket.socket(family, kind, protocol) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
        try:
            probe.bind(address)
        except OSError as error:
            raise ConfigError(f"cannot listen on {host}:{port}: {error.strerror or error}") from None


@contextlib.contextmanager
def _shared_metrics_folder() -> Iterator[None]:
    """A private folder where the workers' Prometheus values meet (``sentsim.serve.metrics``), removed after.

    A folder the caller named in ``PROMETHEUS_MULTIPROC_DIR`` is used as it is and left in place.
    """
    if os.environ.get(MULTIPROCESS_ENV):
        yield
        return
    folder = tempfile.mkdtemp(prefix="sentsim-metrics-")
    os.environ[MULTIPROCESS_ENV] = folder
    try:
        yield
    finally:
        os.environ.pop(MULTIPROCESS_ENV, None)
        shutil.rmtree(folder, ignore_errors=True)


def _keep_exit_status_on_signals() -> None:
    """uvicorn re-raises the stop signal once it has shut down, which would end the process with
    status 143 (SIGTERM) after a perfectly clean stop; a no-op handler turns that into a normal return."""
    for stop in (signal.SIGTERM, signal.SIGINT):
        signal.signal(stop, lambda *_: None)


def _log_setup(level: str) -> None:
    logging.basicConfig(level=level.upper(), format="%(levelname)s:     %(name)s: %(message)s")
    logging.getLogger("sentsim.serve").setLevel(level.upper())  # the CLI set up logging at WARNING already
