"""Sentence pairs (scored or not), the dataset that holds them, and the row checks every reader shares.

Readers (STS Benchmark, generic pair files) only split their format into fields; turning fields into a
validated `ScoredPair` or `TextPair`, and deciding whether a bad row stops the read or is skipped, happens
here once, so every format reports problems with the same wording, file name and line number.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Generic, TypeVar, overload

import numpy as np

from sentsim.errors import ConfigError, DataFormatError, ScoreScaleWarning

# How many line numbers `skipped_summary` lists before it only counts; a summary is one log line, not
# a report of every row.
_SUMMARY_LINES = 20

PairT = TypeVar("PairT")


@dataclass(frozen=True, slots=True)
class ScoredPair:
    """Two sentences and their gold similarity, already normalised to 0–1.

    The score is normalised at read time so losses and metrics never need to know whether the source
    used 0–5 (STS Benchmark) or another scale.
    """

    sentence1: str
    sentence2: str
    score: float
    genre: str | None = None
    line: int | None = None  # 1-based line in the source file, so a bad prediction can be traced back

    def __post_init__(self) -> None:
        # Readers always normalise; a score outside 0–1 here means a caller skipped that step (a bug).
        if not 0.0 <= self.score <= 1.0:
            raise ValueError(f"ScoredPair.score must be normalised to 0–1, got {self.score!r}")


@dataclass(frozen=True, slots=True)
class TextPair:
    """Two sentences without a gold score: a pair the user wants a model to score."""

    sentence1: str
    sentence2: str
    line: int | None = None  # 1-based line in the source file, so an output row can be traced back


@dataclass
class SkippedRow:
    """A row left out because `skip_bad_rows` was set; kept so the user can see what was dropped."""

    line: int
    reason: str


@dataclass
class PairDataset:
    """The validated pairs of one source, plus the rows that were skipped on the way."""

    pairs: list[ScoredPair]
    source: str
    skipped: list[SkippedRow] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.pairs)

    def __iter__(self) -> Iterator[ScoredPair]:
        return iter(self.pairs)

    @overload
    def __getitem__(self, index: int) -> ScoredPair: ...
    @overload
    def __getitem__(self, index: slice) -> PairDataset: ...
    def __getitem__(self, index: int | slice) -> ScoredPair | PairDataset:
        # A slice stays a dataset so it keeps its source for messages and reports.
        if isinstance(index, slice):
            return PairDataset(pairs=self.pairs[index], source=self.source, skipped=list(self.skipped))
        return self.pairs[index]

    @property
    def sentences1(self) -> list[str]:
        return [pair.sentence1 for pair in self.pairs]

    @property
    def sentences2(self) -> list[str]:
        return [pair.sentence2 for pair in self.pairs]

    @property
    def scores(self) -> np.ndarray:
        """Gold scores on the 0–1 scale as float64, ready for correlation metrics."""
        return np.fromiter((pair.score for pair in self.pairs), dtype=np.float64, count=len(self.pairs))

    @property
    def genres(self) -> list[str | None]:
        return [pair.genre for pair in self.pairs]

    def subset(self, n: int) -> PairDataset:
        """The first `n` pairs (all of them if there are fewer).

        The first rather than a random sample so that a quick run on a subset is reproducible without a
        seed; shuffle before calling if the file is sorted by something that matters.
        """
        if n < 0:
            raise ConfigError(f"subset size must be 0 or more, got {n}")
        return self[:n]

    def require_scorable(self) -> PairDataset:
        """Returns self if correlations can be computed on it, else raises a DataFormatError.

        Spearman needs at least two pairs and two different gold scores; checked up front so the
        user hears it before a model loads, instead of meeting NaN at the end of a run.
        """
        if len(self.pairs) < 2:
            raise DataFormatError(self.source, None,
                                  f"need at least 2 pairs to compute a correlation, found {len(self.pairs)}")
        if len({pair.score for pair in self.pairs}) < 2:
            raise DataFormatError(self.source, None, "all gold scores are equal: a correlation is undefined")
        return self

    def skipped_summary(self) -> str:
        """One line saying which rows were skipped and why the first one was, for logs and the CLI."""
        if not self.skipped:
            return "no rows skipped"
        count = len(self.skipped)
        lines = ", ".join(str(row.line) for row in self.skipped[:_SUMMARY_LINES])
        if count > _SUMMARY_LINES:
            lines += f" and {count - _SUMMARY_LINES} more"
        noun = "row" if count == 1 else "rows"
        word = "line" if count == 1 else "lines"
        return f"skipped {count} bad {noun} in {self.source} ({word} {lines}: {self.skipped[0].reason})"


# ---------------------------------------------------------------------------------------------------
# Shared reading and validation. Used by the format readers in this package, not re-exported.


class BadRow(Exception):
    """Raised by a reader inside `PairCollector.row` for a row that cannot become a pair."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def check_sentence(value: object, *, column: str) -> str:
    """The sentence text, stripped of surrounding whitespace, or `BadRow` if it is missing or empty."""
    if not isinstance(value, str):
        raise BadRow(f"{column} must be a string, found {type(value).__name__} {value!r}")
    text = value.strip()
    if not text:
        raise BadRow(f"empty sentence in {column}")
    return text


def check_score_range(score_range: tuple[float, float]) -> tuple[float, float]:
    """Validate a declared score range up front, before any row is read (a config error, not a data one)."""
    low, high = (float(bound) for bound in score_range)
    if not (math.isfinite(low) and math.isfinite(high)) or low >= high:
        raise ConfigError(f"score_range must be two finite numbers with low < high, got {score_range!r}")
    return low, high


def _fmt(number: float) -> str:
    return f"{number:g}"


def check_score(value: object, *, column: str, score_range: tuple[float, float]) -> float:
    """Parse a raw score and normalise it from the declared range to 0–1.

    Out-of-range scores are errors rather than being clipped: they usually mean the wrong column or the
    wrong scale, and clipping would silently corrupt the training signal.
    """
    low, high = score_range
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise BadRow(f"score {value!r} in {column} is not a number")
    if isinstance(value, str):
        try:
            if "_" in value:  # Python's float() reads "0_1" as 1; no data file means that
                raise ValueError(value)
            number = float(value.strip())
        except ValueError:
            raise BadRow(f"score {value!r} in {column} is not a number") from None
    else:
        number = float(value)
    if not math.isfinite(number):
        raise BadRow(f"score {value!r} in {column} is not a finite number")
    if not low <= number <= high:
        raise BadRow(
            f"score {_fmt(number)} in {column} is outside the declared range {_fmt(low)}–{_fmt(high)} "
            "(set score_range, --score-range LOW HIGH, if the file uses another scale)"
        )
    return (number - low) / (high - low)


class RowCollector(Generic[PairT]):
    """Collects validated pairs of one file and applies the `skip_bad_rows` policy in one place.

    Subclasses only say what a pair is (scored or not); readers call `add_fields` with the raw values of
    the columns they were asked for, so one reader serves both kinds of file.
    """

    def __init__(self, path: str | Path, *, skip_bad_rows: bool) -> None:
        self.path = str(path)
        self.skip_bad_rows = skip_bad_rows
        self.pairs: list[PairT] = []
        self.skipped: list[SkippedRow] = []

    @contextmanager
    def row(self, line: int) -> Iterator[None]:
        """Run the parsing of one row; a `BadRow` inside is skipped or raised as `DataFormatError`."""
        try:
            yield
        except BadRow as bad:
            if not self.skip_bad_rows:
                raise DataFormatError(self.path, line, bad.reason) from None
            self.skipped.append(SkippedRow(line=line, reason=bad.reason))

    def add_fields(
        self, *, line: int, fields: Sequence[object], genre: str | None, columns: Sequence[str]
    ) -> None:
        """Validate the raw values of the requested columns, in the order the reader was given them."""
        raise NotImplementedError

    def _require_pairs(self) -> None:
        # Raised here rather than returning nothing, since an empty result only fails later and vaguer.
        if self.pairs:
            return
        if not self.skipped:
            raise DataFormatError(self.path, None, "no data rows")
        first = self.skipped[0]
        raise DataFormatError(
            self.path,
            None,
            f"no usable pairs: all {len(self.skipped)} data rows are bad (first: line {first.line}: {first.reason})",
        )


#: Fewer pairs than this are not checked for a mismatched score scale (too few to tell).
SCALE_CHECK_PAIRS = 20


class PairCollector(RowCollector[ScoredPair]):
    """Collects scored pairs, normalising each score from the declared range to 0–1."""

    def __init__(self, path: str | Path, *, score_range: tuple[float, float], skip_bad_rows: bool) -> None:
        super().__init__(path, skip_bad_rows=skip_bad_rows)
        self.score_range = check_score_range(score_range)

    def add(
        self,
        *,
        line: int,
        sentence1: object,
        sentence2: object,
        score: object,
        genre: str | None = None,
        columns: tuple[str, str, str] = ("sentence1", "sentence2", "score"),
    ) -> None:
        """Validate raw field values and keep the pair; `columns` names the fields in messages."""
        first = check_sentence(sentence1, column=columns[0])
        second = check_sentence(sentence2, column=columns[1])
        normalised = check_score(score, column=columns[2], score_range=self.score_range)
        self.pairs.append(ScoredPair(first, second, normalised, genre=genre or None, line=line))

    def add_fields(
        self, *, line: int, fields: Sequence[object], genre: str | None, columns: Sequence[str]
    ) -> None:
        sentence1, sentence2, score = fields
        first, second, third = columns
        self.add(line=line, sentence1=sentence1, sentence2=sentence2, score=score, genre=genre,
                 columns=(first, second, third))

    def finish(self) -> PairDataset:
        """The dataset; raises when nothing usable was read, warns when its scores look like another scale."""
        self._require_pairs()
        self._check_scale()
        return PairDataset(pairs=self.pairs, source=self.path, skipped=self.skipped)

    def _check_scale(self) -> None:
        """A :class:`ScoreScaleWarning` when every score fits in the range's bottom unit (0–1 of 0–5).

        Why: scores above the range are refused, but 0–1 scores read as 0–5 pass every check and end up
        as labels of 0–0.2, which the cosine loss and the 0–5 calibration learn as given. A warning, not
        an error: a small file of unrelated pairs can be 0–1 on the 0–5 scale by rights.
        """
        low, high = self.score_range
        scores = {pair.score for pair in self.pairs}
        if high - low <= 1 or len(self.pairs) < SCALE_CHECK_PAIRS or len(scores) < 2:
            return
        if max(scores) * (high - low) <= 1.0 + 1e-9:
            warnings.warn(
                f"all {len(self.pairs)} scores in {self.path} lie between {_fmt(low)} and {_fmt(low + 1)}, the "
                f"bottom of the declared range {_fmt(low)}–{_fmt(high)}; if the file is on a 0–1 scale (as "
                "sentence-transformers/stsb is), pass --score-range 0 1 (score_range=(0, 1)), or its labels are "
                f"read as 0–{_fmt(1 / (high - low))}",
                ScoreScaleWarning,
                stacklevel=2,
            )


class TextPairCollector(RowCollector[TextPair]):
    """Collects unscored pairs (files to be scored by a model); same sentence checks as scored ones."""

    def add_fields(
        self, *, line: int, fields: Sequence[object], genre: str | None, columns: Sequence[str]
    ) -> None:
        # A genre column means nothing without gold scores to group, so it is not kept.
        sentence1, sentence2 = fields
        first = check_sentence(sentence1, column=columns[0])
        second = check_sentence(sentence2, column=columns[1])
        self.pairs.append(TextPair(first, second, line=line))

    def finish(self) -> list[TextPair]:
        """The pairs in file order; raises when nothing usable was read."""
        self._require_pairs()
        return self.pairs
