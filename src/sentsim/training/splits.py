"""The train/dev/test splits of a run: an STSb folder, or separate pair files (test optional there)."""

from __future__ import annotations

from typing import Any

from sentsim.data import PairDataset, load_pairs, read_anchor_positive_file
from sentsim.data.sources import is_single_set
from sentsim.errors import ConfigError
from sentsim.training.options import RunOptions


def load_splits(options: RunOptions, *, unscored_train: bool = False) -> tuple[Any, PairDataset, PairDataset | None]:
    """train/dev/test from an STSb folder, or from separate pair files (test is optional there).

    ``unscored_train`` (for in-batch-negative losses) reads the training file as anchor, positive and
    optional negative columns; dev and test stay scored, to pick and report the checkpoint.
    """
    common = {"skip_bad_rows": options.skip_bad_rows, **options.data_options}
    single_set = is_single_set(options.data)  # a pair file or a SemEval set: no splits of its own
    if unscored_train:
        if not single_set:
            raise ConfigError("--loss mnrl trains on an unscored file with anchor and positive (and optional "
                              "negative) columns: pass it as --data FILE, with --dev-data for scored dev pairs")
        train_set: Any = read_anchor_positive_file(options.data, skip_bad_rows=options.skip_bad_rows)
    else:
        train_set = load_pairs(options.data, split="train", **common)
    if options.dev_data is not None:
        dev_set = load_pairs(options.dev_data, split="dev", **common)
    elif single_set:
        raise ConfigError("training on a pair file or a SemEval STS set needs --dev-data FILE to pick the best "
                          "checkpoint")
    else:
        dev_set = load_pairs(options.data, split="dev", **common)
    if not options.evaluate_test:
        test_set = None
    elif options.test_data is not None:
        test_set = load_pairs(options.test_data, split="test", **common)
    else:
        test_set = None if single_set else load_pairs(options.data, split="test", **common)
    dev_set.require_scorable()
    if test_set is not None:
        test_set.require_scorable()
    return train_set, dev_set, test_set
