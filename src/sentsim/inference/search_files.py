"""``sentsim search`` and ``sentsim dedup`` as library calls: text files in, top-k hits as JSONL out.

A query file is searched against a corpus (a text file, or the embeddings ``sentsim encode`` wrote, as
``.npy`` or ``.jsonl``, plus optionally the text file they came from); dedup mines the most similar pairs
within one corpus.
Output is written atomically and never replaces an existing file unless ``force`` is set.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from sentsim.data.lines import not_a_file
from sentsim.errors import ConfigError, DataFormatError
from sentsim.inference.encode_files import read_sentence_file
from sentsim.inference.neighbours import near_duplicate_pairs, nearest
from sentsim.persistence.atomic import atomic_write_text
from sentsim.persistence.outputs import check_output_path

if TYPE_CHECKING:
    from sentsim.encoders.bi_encoder import SentenceTransformer


#: What ``sentsim encode`` writes embeddings as, and so what a corpus of embeddings may be.
EMBEDDING_SUFFIXES = (".npy", ".jsonl")


def _write_jsonl(output: Path, records: list[dict[str, Any]]) -> None:
    atomic_write_text(output, "".join(json.dumps(record, ensure_ascii=False) + "\n" for record in records))


def load_corpus(model: SentenceTransformer, corpus: Path, *, corpus_text: Path | None, batch_size: int,
                dtype: str, allow_blank: bool = False) -> tuple[np.ndarray, list[str] | None]:
    """Corpus embeddings (read from ``.npy`` / ``.jsonl`` or encoded from a text file) and texts, when known."""
    if corpus.suffix.lower() in EMBEDDING_SUFFIXES:
        if not corpus.is_file():
            raise ConfigError(not_a_file(corpus))
        if corpus.suffix.lower() == ".jsonl":
            embeddings = _jsonl_embeddings(corpus)
        else:
            try:
                embeddings = np.load(corpus, allow_pickle=False)
            except ValueError as error:
                raise ConfigError(f"{corpus}: not a .npy matrix ({error})") from error
        if embeddings.ndim != 2 or embeddings.shape[1] != model.embedding_dimension:
            raise ConfigError(f"{corpus}: shape {embeddings.shape} does not match the model's "
                              f"{model.embedding_dimension} dimensions")
        texts = read_sentence_file(corpus_text, allow_blank=allow_blank) if corpus_text is not None else None
        if texts is not None and len(texts) != len(embeddings):
            raise ConfigError(f"{corpus_text} has {len(texts)} lines but {corpus} has {len(embeddings)} rows")
        return embeddings, texts
    if corpus_text is not None:
        raise ConfigError(f"--corpus-text names the text of an embeddings corpus (.npy or .jsonl); {corpus} is "
                          "itself text, so leave --corpus-text out")
    texts = read_sentence_file(corpus, allow_blank=allow_blank)
    return model.encode(texts, batch_size=batch_size, dtype=dtype), texts


def _jsonl_embeddings(path: Path) -> np.ndarray:
    """The rows ``sentsim encode -o FILE.jsonl`` wrote (``{"id": line, "embedding": [...]}``), in line order.

    Without this, such a file would be taken for a text corpus and its JSON lines searched as sentences.
    """
    rows: list[list[float]] = []
    ids: list[object] = []
    with path.open(encoding="utf-8", errors="replace") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                record = None
            vector = record.get("embedding") if isinstance(record, dict) else None
            if not isinstance(vector, list) or not vector or not all(
                    isinstance(value, int | float) and not isinstance(value, bool) for value in vector):
                raise DataFormatError(path, number, 'a .jsonl corpus holds the embeddings `sentsim encode -o '
                                      'FILE.jsonl` writes ({"id": ..., "embedding": [numbers]}); give a text corpus '
                                      "as a .txt file")
            rows.append(vector)
            ids.append(record.get("id"))
    if not rows:
        raise DataFormatError(path, None, "no embeddings in the file")
    if len({len(row) for row in rows}) != 1:
        raise DataFormatError(path, None, "the embeddings do not all have the same length")
    matrix = np.asarray(rows, dtype=np.float32)
    if all(isinstance(value, int) and not isinstance(value, bool) for value in ids):
        # encode's ids are the text's line numbers: rows go back to line order, so --corpus-text lines up
        if sorted(ids) != list(range(1, len(ids) + 1)):  # type: ignore[type-var]
            raise DataFormatError(path, None, f"the ids are not the line numbers 1 to {len(ids)} of one text file "
                                  "(rows dropped or repeated since `sentsim encode` wrote them)")
        matrix = matrix[np.argsort(np.asarray(ids))]
    return matrix


def search_file(model: SentenceTransformer, queries: Path, corpus: Path, output: Path, *, top_k: int = 10,
                corpus_text: Path | None = None, force: bool = False, batch_size: int = 64,
                dtype: str = "auto", allow_blank: bool = False) -> int:
    """Writes one JSONL line per query: ``{"query", "hits": [{"corpus_id", "score"[, "text"]}]}``.

    ``allow_blank``: blank lines are texts (empty) instead of an error, so line numbers and ids stay aligned."""
    if top_k < 1:
        raise ConfigError(f"--top-k must be at least 1, got {top_k}")
    output = check_output_path(output, force=force, inputs=[queries, corpus, *([corpus_text] if corpus_text else [])],
                               example_name="hits.jsonl")
    if queries.suffix.lower() in EMBEDDING_SUFFIXES and _is_embeddings_file(queries):
        raise ConfigError(f"{queries}: the queries are text, one per line; this file holds embeddings from "
                          "`sentsim encode` (did the queries and the corpus swap places?)")
    query_texts = read_sentence_file(queries, allow_blank=allow_blank)
    corpus_embeddings, corpus_texts = load_corpus(model, corpus, corpus_text=corpus_text, batch_size=batch_size,
                                                  dtype=dtype, allow_blank=allow_blank)
    query_embeddings = model.encode(query_texts, batch_size=batch_size, dtype=dtype)
    results = nearest(query_embeddings, corpus_embeddings, top_k=top_k)
    records = []
    for text, (ids, scores) in zip(query_texts, results, strict=True):
        hits = [{"corpus_id": corpus_id, "score": score} for corpus_id, score in zip(ids.tolist(), scores.tolist(),
                                                                                     strict=True)]
        if corpus_texts is not None:
            hits = [{**hit, "text": corpus_texts[hit["corpus_id"]]} for hit in hits]
        records.append({"query": text, "hits": hits})
    _write_jsonl(output, records)
    return len(records)


def dedup_file(model: SentenceTransformer, corpus: Path, output: Path, *, threshold: float = 0.9, top_k: int = 10,
               corpus_text: Path | None = None, force: bool = False, batch_size: int = 64,
               dtype: str = "auto", allow_blank: bool = False) -> int:
    """Writes the corpus pairs with cosine ≥ ``threshold``, best first: ``{"score", "i", "j"[, texts]}``."""
    if not -1.0 <= threshold <= 1.0:
        raise ConfigError(f"--threshold is a cosine in [-1, 1], got {threshold}")
    if top_k < 1:
        raise ConfigError(f"--top-k must be at least 1, got {top_k}")
    output = check_output_path(output, force=force, inputs=[corpus, *([corpus_text] if corpus_text else [])],
                               example_name="pairs.jsonl")
    embeddings, texts = load_corpus(model, corpus, corpus_text=corpus_text, batch_size=batch_size, dtype=dtype,
                                    allow_blank=allow_blank)
    records = []
    for score, i, j in near_duplicate_pairs(embeddings, threshold=threshold, top_k=top_k):
        record: dict[str, Any] = {"score": score, "i": i, "j": j}
        if texts is not None:
            record.update(text_i=texts[i], text_j=texts[j])
        records.append(record)
    _write_jsonl(output, records)
    return len(records)


def _is_embeddings_file(path: Path) -> bool:
    """Whether ``path`` looks like ``sentsim encode``'s output: a .npy file, or JSON lines with an embedding."""
    if path.suffix.lower() == ".npy":
        return True
    try:
        with path.open(encoding="utf-8", errors="replace") as handle:
            record = json.loads(handle.readline())
    except (OSError, ValueError):
        return False
    return isinstance(record, dict) and "embedding" in record

