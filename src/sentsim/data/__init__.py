"""The data stage: files on disk (STS Benchmark, SemEval STS sets or CSV/TSV/JSONL pair files) → validated pairs."""

from sentsim.data.anchor_files import AnchorPositive, AnchorPositiveDataset, read_anchor_positive_file
from sentsim.data.pair_files import read_pair_file, read_text_pairs
from sentsim.data.pairs import PairDataset, ScoredPair, SkippedRow, TextPair
from sentsim.data.semeval import read_semeval_sts
from sentsim.data.sources import load_pairs
from sentsim.data.stsbenchmark import ensure_stsbenchmark, genre_name, read_stsbenchmark

__all__ = [
    "AnchorPositive",
    "AnchorPositiveDataset",
    "PairDataset",
    "ScoredPair",
    "SkippedRow",
    "TextPair",
    "ensure_stsbenchmark",
    "genre_name",
    "load_pairs",
    "read_anchor_positive_file",
    "read_pair_file",
    "read_semeval_sts",
    "read_stsbenchmark",
    "read_text_pairs",
]
