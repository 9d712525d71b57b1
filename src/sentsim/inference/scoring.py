"""Scoring a file of sentence pairs with a model: cosine and calibrated 0–5 per pair, written as CSV or JSONL."""

from __future__ import annotations

import csv
import io
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from sentsim.data.pair_files import read_text_pairs
from sentsim.data.pairs import TextPair
from sentsim.errors import ConfigError
from sentsim.inference.calibration import aligned_cosines, calibrated_scores
from sentsim.inference.pairs import encode_pairs
from sentsim.persistence.atomic import atomic_write_text

if TYPE_CHECKING:
    from sentsim.encoders.bi_encoder import SentenceTransformer

__all__ = ["OUTPUT_COLUMNS", "pair_scores", "score_pair_file", "score_pairs"]

#: Columns of every output row, in order; ``score_0_5`` is empty (CSV) or null (JSONL) without a calibration.
OUTPUT_COLUMNS = ("sentence1", "sentence2", "cosine", "score_0_5")
_CSV = {".csv"}
_JSONL = {".jsonl", ".ndjson"}
# Six decimals keep the ranking of any realistic file while not printing float32 noise as if it meant something.
_DIGITS = 6

Renderer = Callable[[Sequence[TextPair], np.ndarray, "np.ndarray | None"], str]


def score_pair_file(
    model: SentenceTransformer,
    path: str | Path,
    *,
    output: str | Path | None,
    batch_size: int = 64,
    dtype: str = "auto",
    quiet: bool = False,
    sentence1_column: str = "sentence1",
    sentence2_column: str = "sentence2",
) -> int:
    """Score every pair of ``path`` with ``model`` and write one row per pair.

    Args:
        model: the model; its ``calibration`` (when not None) turns cosines into 0–5 scores.
        path: a .csv, .tsv, .txt (tab-separated) or .jsonl pair file with the two sentence columns; other
            columns are ignored, so a file with gold scores can be scored too.
        output: ``.csv`` or ``.jsonl`` file, written atomically so an interrupted run never leaves a
            half-written result that looks complete; ``None`` prints CSV to stdout for piping.
        batch_size: sentences per forward pass.
        dtype: ``auto``, ``fp32`` or ``bf16`` (see `sentsim.inference.encode.encode.encode`).
        quiet: no progress bar and no summary line on stderr.
        sentence1_column, sentence2_column: column (CSV/TSV) or key (JSONL) names of the two sentences.

    Returns:
        The number of pairs scored.

    Raises:
        ConfigError: for an output extension other than .csv or .jsonl, checked before the model runs,
            so a typo does not cost a full encoding pass.
        DataFormatError: for a malformed pair file, naming the file and line.
    """
    render = _renderer(Path(output)) if output is not None else _render_csv
    pairs = read_text_pairs(path, sentence1_column=sentence1_column, sentence2_column=sentence2_column)
    return _score_and_write(model, pairs, render, output=output, batch_size=batch_size, dtype=dtype,
                            quiet=quiet)


def score_pairs(
    model: SentenceTransformer,
    pairs: Sequence[TextPair],
    *,
    output: str | Path | None,
    batch_size: int = 64,
    dtype: str = "auto",
    quiet: bool = False,
) -> int:
    """Like `score_pair_file` for pairs already in memory (``sentsim similarity A B -o FILE``)."""
    render = _renderer(Path(output)) if output is not None else _render_csv
    return _score_and_write(model, pairs, render, output=output, batch_size=batch_size, dtype=dtype,
                            quiet=quiet)


def pair_scores(
    model: SentenceTransformer,
    pairs: Sequence[TextPair],
    *,
    batch_size: int = 64,
    dtype: str = "auto",
    quiet: bool = False,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Cosine of every pair, and its calibrated 0–5 score (None when the model has no calibration)."""
    first, second = encode_pairs(
        model,
        [pair.sentence1 for pair in pairs],
        [pair.sentence2 for pair in pairs],
        batch_size=batch_size,
        dtype=dtype,
        normalize=True,
        show_progress=False if quiet else None,
    )
    cosines = aligned_cosines(first, second)  # both sides are unit vectors
    return cosines, calibrated_scores(cosines, model.calibration)


def _score_and_write(model: SentenceTransformer, pairs: Sequence[TextPair], render: Renderer, *,
                     output: str | Path | None, batch_size: int, dtype: str, quiet: bool) -> int:
    cosines, scores = pair_scores(model, pairs, batch_size=batch_size, dtype=dtype, quiet=quiet)
    text = render(pairs, cosines, scores)
    if output is None:
        sys.stdout.write(text)
        sys.stdout.flush()
    else:
        target = Path(output).expanduser()
        target.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(target, text)
    if not quiet:
        where = "stdout" if output is None else str(output)
        note = "" if scores is not None else " (cosine only: the model has no 0–5 calibration)"
        print(f"scored {len(pairs)} pairs → {where}{note}", file=sys.stderr)
    return len(pairs)


def _renderer(output: Path) -> Renderer:
    """The writer for the output's extension; raises before any work is done if there is none."""
    suffix = output.suffix.lower()
    if suffix in _CSV:
        return _render_csv
    if suffix in _JSONL:
        return _render_jsonl
    raise ConfigError(f"cannot write {output}: the output must end in .csv or .jsonl, not {suffix or 'nothing'!r}")


def _rows(
    pairs: Sequence[TextPair], cosines: np.ndarray, scores: np.ndarray | None
) -> list[tuple[str, str, float, float | None]]:
    return [
        (
            pair.sentence1,
            pair.sentence2,
            round(float(cosines[index]), _DIGITS),
            None if scores is None else round(float(scores[index]), _DIGITS),
        )
        for index, pair in enumerate(pairs)
    ]


def _render_csv(pairs: Sequence[TextPair], cosines: np.ndarray, scores: np.ndarray | None) -> str:
    buffer = io.StringIO()
    # "\n" rather than the csv module's "\r\n": the text is written byte for byte on every platform.
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(OUTPUT_COLUMNS)
    for sentence1, sentence2, cosine, score in _rows(pairs, cosines, scores):
        writer.writerow([sentence1, sentence2, cosine, "" if score is None else score])
    return buffer.getvalue()


def _render_jsonl(pairs: Sequence[TextPair], cosines: np.ndarray, scores: np.ndarray | None) -> str:
    lines = [
        json.dumps(dict(zip(OUTPUT_COLUMNS, row, strict=True)), ensure_ascii=False)
        for row in _rows(pairs, cosines, scores)
    ]
    return "".join(line + "\n" for line in lines)
