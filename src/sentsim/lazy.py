"""Lazy package exports: names resolve on first use, so importing a package costs no torch.

``import sentsim`` and ``sentsim --help`` must stay fast, and the ONNX backend must run where torch
is not installed; a package ``__init__`` therefore names where each export lives instead of
importing it.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from sentsim.errors import missing_dependency


def lazy_exports(package: str, exports: dict[str, str], *, fallbacks: dict[str, str] | None = None,
                 ) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """Returns ``(__getattr__, __dir__)`` for ``package``; ``exports`` maps a name to its module.

    A name mapped to ``f"{package}.{name}"`` is that submodule itself (``sentsim.losses``).
    ``fallbacks`` maps a name to a module whose same-named attribute stands in when the real one's
    optional dependency is missing (``SentenceTransformer`` without torch).
    """
    fallbacks = fallbacks or {}
    namespace = importlib.import_module(package).__dict__

    def __getattr__(name: str) -> Any:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        try:
            imported = importlib.import_module(module)
        except ImportError as error:  # e.g. sentsim.SentenceTransformer in a torch-free install
            missing = missing_dependency(error)
            if missing is None:
                raise
            if name not in fallbacks:
                raise missing from error
            imported, module = importlib.import_module(fallbacks[name]), fallbacks[name]
        value = imported if module == f"{package}.{name}" else getattr(imported, name)
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted(set(namespace) | set(exports))

    return __getattr__, __dir__
