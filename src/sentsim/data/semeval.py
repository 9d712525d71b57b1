"""The SemEval STS test sets of 2012–2016 as released: ``STS.input.<set>.txt`` beside ``STS.gs.<set>.txt``.

Why a reader of its own: these are the "other STS datasets" people evaluate on (SentEval and SimCSE
report them), and their layout fits no pair-file format. Each input line holds two sentences separated
by a tab (2016's files add the sentences' sources as more columns, which are ignored); the gold file
beside it holds one 0–5 score per line, in the same order, and a blank line where the organisers
scored nothing: those pairs are left out, as SentEval leaves them out. 2016 names its files
``STS2016.input.<set>.txt`` and ``STS2016.gs.<set>.txt``. Each set's name becomes its pairs' genre, so
an evaluation reports every set as well as all of them pooled (SimCSE's "all" setting). Text is not
quoted: a quote mark is part of the sentence.
"""

from __future__ import annotations

import re
from pathlib import Path

from sentsim.data.lines import SourceLine, read_lines
from sentsim.data.pairs import BadRow, PairCollector, PairDataset, SkippedRow
from sentsim.errors import ConfigError, DataFormatError

#: An input file's name: its prefix (STS, STS2016 ...) and its set's name.
INPUT_NAME = re.compile(r"^(?P<prefix>STS\d*)\.input\.(?P<name>.+)\.txt$", re.IGNORECASE)
SCORE_RANGE = (0.0, 5.0)


def semeval_gold_name(input_file: Path) -> str | None:
    """The name the gold file of a SemEval input file would have (``STS.gs.NAME.txt``), or None for other files."""
    match = INPUT_NAME.match(input_file.name)
    return None if match is None else f"{match['prefix']}.gs.{match['name']}.txt"


def gold_file(input_file: Path) -> Path | None:
    """The gold-score file beside a SemEval input file, or None if ``input_file`` is not one or has none."""
    match = INPUT_NAME.match(input_file.name)
    if match is None:
        return None
    gold = input_file.with_name(f"{match['prefix']}.gs.{match['name']}.txt")
    return gold if gold.is_file() else None


def semeval_sets(folder: Path) -> list[tuple[str, Path, Path]]:
    """(set name, input file, gold file) for every input file in ``folder`` that has its gold file, by set name."""
    found = []
    for input_file in sorted(folder.iterdir()) if folder.is_dir() else ():
        gold = gold_file(input_file) if input_file.is_file() else None
        if gold is not None:
            found.append((INPUT_NAME.match(input_file.name)["name"], input_file, gold))  # type: ignore[index]
    return sorted(found)


def is_semeval_source(path: Path) -> bool:
    """Whether ``path`` is a SemEval input file with its gold file, or a folder holding such pairs."""
    return gold_file(path) is not None if path.is_file() else bool(semeval_sets(path))


def read_semeval_sts(path: str | Path, *, skip_bad_rows: bool = False) -> PairDataset:
    """All scored pairs of a SemEval STS folder (every set in it), or of one input file, scores ÷ 5.

    Errors name the input file and line (the gold file's line is the same). With ``skip_bad_rows`` a
    malformed pair is recorded in ``PairDataset.skipped``, its reason naming the file.
    """
    path = Path(path).expanduser()
    if path.is_file():
        gold = gold_file(path)
        if gold is None:
            raise ConfigError(f"{path} is not a SemEval STS input file (STS.input.NAME.txt) with its gold file "
                              "(STS.gs.NAME.txt) beside it")
        sets = [(INPUT_NAME.match(path.name)["name"], path, gold)]  # type: ignore[index]
    else:
        sets = semeval_sets(path)
        if not sets:
            raise ConfigError(f"{path} holds no SemEval STS set (STS.input.NAME.txt with STS.gs.NAME.txt)")
    parts = [_read_set(name, inputs, gold, skip_bad_rows=skip_bad_rows) for name, inputs, gold in sets]
    if len(parts) == 1:
        return parts[0]
    skipped = [SkippedRow(line=row.line, reason=f"{Path(part.source).name}: {row.reason}")
               for part in parts for row in part.skipped]
    return PairDataset(pairs=[pair for part in parts for pair in part.pairs], source=str(path), skipped=skipped)


def _read_set(name: str, input_file: Path, scores_file: Path, *, skip_bad_rows: bool) -> PairDataset:
    """One set's scored pairs, line by line from its input file and its gold ``scores_file`` together."""
    inputs = _without_blank_tail(read_lines(input_file))  # an extra newline is not a missing pair
    # Blank gold lines past the last pair go; blank ones up to it leave the last pairs unscored.
    golds = _without_blank_tail(read_lines(scores_file), keep=len(inputs))
    if not inputs:
        raise DataFormatError(input_file, None, "file is empty")
    if len(golds) != len(inputs):
        raise DataFormatError(scores_file, None, f"{len(golds)} lines of scores for the {len(inputs)} lines of "
                                               f"sentence pairs in {input_file.name}: the two must pair line by line")
    collector = PairCollector(input_file, score_range=SCORE_RANGE, skip_bad_rows=skip_bad_rows)
    labels = (f"the first column of {input_file.name}", f"the second column of {input_file.name}", scores_file.name)
    for line, gold in zip(inputs, golds, strict=True):
        score = gold.text.strip()
        if not score and not gold.decode_error:
            continue  # a pair the organisers left unscored
        with collector.row(line.number):
            if line.decode_error or gold.decode_error:
                raise BadRow(line.decode_error or f"{scores_file.name}: {gold.decode_error}")
            fields = line.text.rstrip("\r\n").split("\t")
            if len(fields) < 2:
                raise BadRow("expected two tab-separated sentences, found no tab")
            collector.add(line=line.number, sentence1=fields[0], sentence2=fields[1], score=score, genre=name,
                          columns=labels)
    return collector.finish()


def _without_blank_tail(lines: list[SourceLine], *, keep: int = 0) -> list[SourceLine]:
    """``lines`` without the blank ones at their end, stopping at ``keep`` lines (a bad byte is not blank)."""
    while len(lines) > keep and not lines[-1].text.strip() and not lines[-1].decode_error:
        lines.pop()
    return lines
