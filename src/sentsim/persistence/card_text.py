"""Keeping a model card that already exists true when the model changes without being retrained.

A trained model's card (``sentsim train``'s, or the one it was downloaded with) says far more than
sentsim could write again from memory, so ``save`` keeps it as sentence-transformers does. Two things
in it can go stale without training: the 0–5 calibration (``sentsim calibrate`` fits a new one on other
pairs) and the usage snippet's placeholder id (a hub id becomes known when pushing). These functions
rewrite just those parts.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path

from sentsim.persistence.atomic import atomic_write_text
from sentsim.persistence.minimal_card import LOCAL_PLACEHOLDER, PLACEHOLDER_ID

_SCORES_HEADING = re.compile(r"^## 0–5 scores\b")
_FENCE = re.compile(r"^\s*(```|~~~)")


def restate_calibration(card: str, *, source: str | None, n_pairs: int | None, append: bool = True) -> str:
    """``card`` with its "## 0–5 scores" section saying what the folder's calibration now is.

    ``n_pairs`` None means the folder has no ``calibration.json``. A card without such a section gets
    one at the end when there is a calibration and ``append`` (a card sentsim is writing anew), and is
    returned unchanged otherwise (a card already in the user's folder that sentsim did not write).
    """
    lines = card.splitlines()
    start = _section_start(lines)
    section = _section(source=source, n_pairs=n_pairs)
    if start is None:
        if n_pairs is None or not append:
            return card
        return card.rstrip("\n") + "\n\n" + "\n".join(section) + "\n"
    end = _section_end(lines, start)
    rest = lines[end:]
    return "\n".join(lines[:start] + section + (["", *rest] if rest else [])) + "\n"


def with_model_id(card: str, model_id: str | None) -> str:
    """``card`` loading ``model_id`` where it loads a placeholder: sentence-transformers' cards'
    ``sentence_transformers_model_id`` or the training card's ``path/to/this/model``, quoted either way."""
    if not model_id:
        return card
    for placeholder in (PLACEHOLDER_ID, LOCAL_PLACEHOLDER):
        card = card.replace(json.dumps(placeholder), json.dumps(model_id)).replace(repr(placeholder),
                                                                                   json.dumps(model_id))
    return card


def rewrite_card(card: Path, change: Callable[[str], str]) -> None:
    """Writes ``change(text)`` over the card at ``card`` (atomically) when it differs; a missing or
    undecodable card is left alone, since there is nothing of sentsim's to keep true in it."""
    try:
        text = card.read_text(encoding="utf-8")
    except (FileNotFoundError, UnicodeDecodeError):
        return
    updated = change(text)
    if updated != text:
        atomic_write_text(card, updated)


def _section(*, source: str | None, n_pairs: int | None) -> list[str]:
    if n_pairs is None:
        return ["## 0–5 scores", "", "This folder has no `calibration.json`; `sentsim calibrate MODEL --data PAIRS` "
                "fits the cosine → 0–5 map on scored pairs, after which `model.sts_score(a, b)` gives 0–5 scores."]
    fitted = f"{n_pairs:,} pairs" + (f" of {source}" if source else "")
    return ["## 0–5 scores (calibration.json)", "",
            f"`calibration.json` holds an isotonic map from cosine to the 0–5 STS scale, fitted on {fitted}. "
            "sentence-transformers ignores it; sentsim applies it: `model.sts_score(a, b)` in Python, "
            "`sentsim similarity MODEL \"text a\" \"text b\"` on the command line."]


def _section_start(lines: list[str]) -> int | None:
    return next((index for index, line in _outside_code(lines) if _SCORES_HEADING.match(line)), None)


def _section_end(lines: list[str], start: int) -> int:
    """The index of the next heading of the same or a higher level (outside code), or the end."""
    return next((index for index, line in _outside_code(lines) if index > start and re.match(r"^#{1,2} ", line)),
                len(lines))


def _outside_code(lines: list[str]) -> Iterator[tuple[int, str]]:
    """``(index, line)`` for the lines outside fenced code blocks (a ``## …`` there is code, not a heading)."""
    fenced = False
    for index, line in enumerate(lines):
        if _FENCE.match(line):
            fenced = not fenced
        elif not fenced:
            yield index, line
