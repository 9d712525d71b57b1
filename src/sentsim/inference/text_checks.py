"""Checks of texts typed on the command line before they are scored: empty ones, and ones the model cuts.

A pair file with an empty sentence is refused with its line; two texts given directly must be held
to the same rule ("" vs "" would otherwise score a perfect 1.000). A text longer than the model's
``max_seq_length`` is truncated by the tokenizer without a word; the caller is told how much went.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sentsim.errors import ConfigError

__all__ = ["check_not_empty", "truncation_warning"]


def check_not_empty(texts: Sequence[str], *, names: Sequence[str] = ("first", "second")) -> None:
    """Raises ConfigError naming the first text that is empty or whitespace only."""
    for position, text in enumerate(texts):
        if not text.strip():
            name = names[position] if position < len(names) else f"text {position + 1}"
            what = "empty" if not text else "whitespace only"
            raise ConfigError(f"the {name} text is {what}; give some words to compare (pair files refuse "
                              "empty sentences too)")


def _untruncated_lengths(model: Any, texts: Sequence[str]) -> list[int] | None:
    """Token counts with special tokens and no truncation, or None where the tokenizer cannot say."""
    transformer = getattr(model, "transformer", None)
    tokenizer = getattr(transformer, "tokenizer", None)
    if tokenizer is None or not callable(tokenizer):
        return None
    lowered = [text.lower() for text in texts] if getattr(transformer, "do_lower_case", False) else list(texts)
    encoded = tokenizer(lowered, add_special_tokens=True, truncation=False, padding=False, verbose=False,
                        return_attention_mask=False, return_token_type_ids=False)
    return [len(ids) for ids in encoded["input_ids"]]


def truncation_warning(model: Any, texts: Sequence[str], *, names: Sequence[str] = ("first", "second")) -> str | None:
    """One line saying which texts exceed the model's ``max_seq_length`` and how many tokens are cut; else None."""
    limit = getattr(model, "max_seq_length", None)
    lengths = _untruncated_lengths(model, texts) if isinstance(limit, int) else None
    if not lengths:
        return None
    cut = [f"the {names[index] if index < len(names) else f'text {index + 1}'} text has {length} tokens, "
           f"{length - limit} cut" for index, length in enumerate(lengths) if length > limit]
    if not cut:
        return None
    return f"warning: the model reads at most {limit} tokens per text; " + "; ".join(cut)
