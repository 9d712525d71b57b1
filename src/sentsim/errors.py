"""Typed errors a user can cause: the CLI prints them in one line and exits with status 2.

Anything else that escapes is a bug and keeps its traceback (exit status 1).
"""

from __future__ import annotations

from pathlib import Path


class SentsimError(Exception):
    """Base class for problems caused by input, configuration or environment, not by a bug."""


class SentsimWarning(UserWarning):
    """Input that is probably a mistake but could be meant: the work goes on, and the CLI says so in one
    ``warning:`` line. A UserWarning, so ``warnings`` filters written for those apply."""


class NearConstantScoresWarning(SentsimWarning):
    """The similarities (or gold scores) being correlated are nearly all equal, as an untrained or collapsed
    model gives: the correlation is then ill-determined, and it is said in one line, not scipy's own."""


class ScoreScaleWarning(SentsimWarning):
    """Every gold score of a file lies in the bottom unit of a wider declared range: most likely a file
    already on 0–1 (sentence-transformers/stsb is) read with the default 0–5, which would shrink its labels."""


class DataFormatError(SentsimError):
    """A data file that cannot be read as scored pairs; names the file, the line and the reason."""

    def __init__(self, path: str | Path, line: int | None, reason: str) -> None:
        self.path = str(path)
        self.line = line
        self.reason = reason
        where = f"{self.path}, line {line}" if line is not None else self.path
        super().__init__(f"{where}: {reason}")


class ModelLoadError(SentsimError, OSError):
    """A model folder or name that cannot be turned into a working model.

    Also an ``OSError``, as Hugging Face's and sentence-transformers' load failures are, so code that
    catches those catches this."""


class OfflineError(SentsimError):
    """Something had to be downloaded but the network is off; the message names the flag or variable
    that points at a local copy instead."""


class ConfigError(SentsimError, ValueError):
    """Options that contradict each other or are out of range (also a ``ValueError``, as elsewhere)."""


class UnusedArgumentError(ConfigError, TypeError):
    """Keyword arguments a call does not take: a ValueError, as sentence-transformers raises for ``encode``,
    and a TypeError, as Python raises for any other function."""


class MissingDependencyError(SentsimError):
    """A feature needs an optional dependency this install lacks; names the extra that brings it."""


#: Top-level module → the sentsim extra that installs it.
EXTRA_FOR_MODULE = {
    "torch": "torch", "transformers": "torch", "accelerate": "torch", "safetensors": "torch", "matplotlib": "torch",
    "onnxruntime": "onnx", "onnx": "export", "onnxscript": "export",
    "fastapi": "serve", "uvicorn": "serve", "prometheus_client": "serve",
}


def missing_dependency(error: ImportError) -> MissingDependencyError | None:
    """The typed error for an ImportError of an optional dependency (None for any other ImportError)."""
    module = (getattr(error, "name", None) or "").split(".")[0]
    extra = EXTRA_FOR_MODULE.get(module)
    if extra is None:
        return None
    what = "training and the torch backend need" if extra == "torch" else "this needs"
    backend = " (or use --backend onnx on a folder written by `sentsim export`)" if extra == "torch" else ""
    return MissingDependencyError(f"{what} {module}, which is not installed: pip install \"sentsim[{extra}]\"{backend}")
