"""sentence-transformers' ``BatchSamplers`` names, so ``batch_sampler=BatchSamplers.NO_DUPLICATES`` reads the same.

No torch here: ``from sentsim import BatchSamplers`` stays as cheap as the rest of the lazy top level.
"""

from __future__ import annotations

from enum import StrEnum


class BatchSamplers(StrEnum):
    """The batch sampler names sentence-transformers 6.2 takes, with the same values.

    A member equals its plain string, so the Trainer arguments accept either. sentsim always groups
    batches by length; it accepts only the names in ``SUPPORTED_BATCH_SAMPLERS`` and refuses the rest by name.
    """

    BATCH_SAMPLER = "batch_sampler"
    NO_DUPLICATES = "no_duplicates"
    NO_DUPLICATES_HASHED = "no_duplicates_hashed"
    GROUP_BY_LABEL = "group_by_label"


#: The no-duplicates samplers keep a text from being its own in-batch negative; sentsim's
#: MultipleNegativesRankingLoss masks such duplicates instead, so those names change nothing here.
SUPPORTED_BATCH_SAMPLERS = (BatchSamplers.BATCH_SAMPLER, BatchSamplers.NO_DUPLICATES,
                            BatchSamplers.NO_DUPLICATES_HASHED)


class MultiDatasetBatchSamplers(StrEnum):
    """How batches of several training datasets take turns, with sentence-transformers 6.2's names and values.

    Each batch comes from one dataset (the dataset's own loss scores it). ``PROPORTIONAL`` (the default)
    uses every row, drawing each next batch's dataset at random in proportion to its batches left;
    ``ROUND_ROBIN`` takes one batch of each dataset in turn and ends the epoch when the smallest runs out.
    """

    ROUND_ROBIN = "round_robin"
    PROPORTIONAL = "proportional"
