"""sentence-transformers' prompts, shared by the torch model and the ONNX encoder (no torch here).

A model folder may store named prompts (``{"query": "query: "}``) and a default one in
``config_sentence_transformers.json``; ``encode`` prepends the chosen prompt to every text. Both
backends resolve them with these functions, so the same folder embeds the same strings either way.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

logger = logging.getLogger(__name__)


#: The prompts every model has (sentence-transformers 6's), empty until given or saved.
DEFAULT_PROMPTS: dict[str, str | None] = {"query": None, "document": None}


def prompt_settings(stored: dict[str, Any], prompts: dict[str, str] | None,
                    default_prompt_name: str | None) -> tuple[dict[str, str], str | None]:
    """The model's prompts and default prompt name: given ones win over those saved with the model.

    As in sentence-transformers 6, every model has a ``query`` and a ``document`` prompt, empty unless
    given or saved, so ``prompt_name="query"`` works on any model and ``encode_document`` takes
    ``document`` before a saved ``passage``.
    """
    merged: dict[str, str | None] = {**DEFAULT_PROMPTS, **(prompts or {})}
    for name, text in (stored.get("prompts") or {}).items():
        if merged.get(name) is None:
            merged[name] = text
    merged = {name: "" if text is None else text for name, text in merged.items()}
    default = default_prompt_name or stored.get("default_prompt_name")
    if default is not None and default not in merged:
        raise ValueError(f"default prompt name {default!r} is not among the prompts {list(merged)!r}")
    return merged, default


def resolve_prompt(prompts: dict[str, str], default_prompt_name: str | None, prompt: str | None,
                   prompt_name: str | None) -> str | None:
    """An explicit prompt wins over a prompt name, which wins over the model's default prompt."""
    if prompt is not None:
        if prompt_name is not None:
            logger.warning("both prompt and prompt_name given: using prompt, ignoring prompt_name")
        return prompt
    if prompt_name is not None:
        if prompt_name not in prompts:
            raise ValueError(f"prompt name {prompt_name!r} is not among the model's prompts {list(prompts)!r}")
        return prompts[prompt_name]
    if default_prompt_name is not None:
        return prompts.get(default_prompt_name)
    return None


class PromptShortcuts:
    """``encode_query`` / ``encode_document``: ``encode`` with the model's query or document prompt.

    Mixed into both encoders; they provide ``prompts`` and an ``encode`` with sentence-transformers'
    ``prompt_name`` and ``prompt`` arguments.
    """

    prompts: dict[str, str]
    encode: Callable[..., Any]

    def encode_query(self, inputs: str | Sequence[str], prompt_name: str | None = None, prompt: str | None = None,
                     **options: Any) -> Any:
        """``encode`` with the model's "query" prompt, when it has one and none is given."""
        if prompt_name is None and prompt is None and "query" in self.prompts:
            prompt_name = "query"
        return self.encode(inputs, prompt_name=prompt_name, prompt=prompt, **options)

    def encode_document(self, inputs: str | Sequence[str], prompt_name: str | None = None,
                        prompt: str | None = None, **options: Any) -> Any:
        """``encode`` with the model's "document" (or "passage", "corpus") prompt, when it has one."""
        if prompt_name is None and prompt is None:
            prompt_name = next((name for name in ("document", "passage", "corpus") if name in self.prompts), None)
        return self.encode(inputs, prompt_name=prompt_name, prompt=prompt, **options)
