"""Losses over in-batch negatives: each anchor against every positive (and hard negative) of its batch.

Unscored (anchor, positive[, negative]) texts, the NLI recipe's objective; the training loop feeds these
losses the texts' ids (``in_batch_negatives = True``) so that a text seen twice in a batch is not taken
for a negative of itself.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sentsim.errors import ConfigError
from sentsim.losses.checks import check_scale

__all__ = ["CachedMultipleNegativesRankingLoss", "MultipleNegativesRankingLoss", "in_batch_duplicates"]


class MultipleNegativesRankingLoss(nn.Module):
    """In-batch negatives (Henderson et al., 2017): each anchor must pick its own positive out of every
    positive (and hard negative) in the batch, by softmax cross-entropy over ``scale · similarity``.

    Trains on unscored (anchor, positive[, negative]) texts, the NLI recipe's objective. A text that
    appears twice in a batch must not count as a negative of itself: with ``text_ids`` (one integer per
    distinct text, ``(batch, 2 or 3)`` for anchor, positive, negative), a candidate whose text equals the
    anchor's positive, or whose anchor equals this anchor (the same premise with a second entailment), is
    masked out, except the true positive.

    It sets ``in_batch_negatives = True``: the training loop then feeds it texts' ids instead of scores.
    """

    in_batch_negatives = True

    def __init__(self, model: nn.Module | None = None, scale: float = 20.0, similarity_fct=None) -> None:
        """Create the loss.

        Args:
            model: ignored; stored as ``self.model`` only for sentence-transformers call compatibility.
            scale: inverse temperature on the similarities (20, as in sentence-transformers).
            similarity_fct: ``(a, b) -> (len(a), len(b))`` score matrix; cosine by default.
        """
        super().__init__()
        from sentsim.inference.similarity import cos_sim

        self.model = model
        self.scale = check_scale(scale)
        self.similarity_fct = similarity_fct if similarity_fct is not None else cos_sim

    def forward(self, anchors: Tensor, positives: Tensor, negatives: Tensor | None = None, *,
                text_ids: Tensor | None = None) -> Tensor:
        """Mean cross-entropy of each anchor against the batch's positives (then hard negatives)."""
        if anchors.ndim != 2 or anchors.shape != positives.shape:
            raise ValueError(f"anchors and positives must both be (batch, dim), got {tuple(anchors.shape)} and "
                             f"{tuple(positives.shape)}")
        candidates = positives if negatives is None else torch.cat([positives, negatives])
        scores = self.similarity_fct(anchors, candidates).float() * self.scale
        batch = anchors.shape[0]
        if text_ids is not None:
            scores = scores.masked_fill(in_batch_duplicates(text_ids.to(scores.device), negatives is not None),
                                        float("-inf"))
        return F.cross_entropy(scores, torch.arange(batch, device=scores.device))


def in_batch_duplicates(text_ids: Tensor, with_negatives: bool) -> Tensor:
    """``(batch, candidates)`` mask of false negatives: candidates that are really positives of the anchor.

    Candidate ``j`` (a positive) is masked for anchor ``i ≠ j`` when its text equals anchor ``i``'s positive
    or anchor ``j`` is the same text as anchor ``i``; a hard negative is masked when its text equals the
    anchor's positive. The diagonal (the true positive) is never masked.
    """
    anchor_ids, positive_ids = text_ids[:, 0], text_ids[:, 1]
    same_positive = positive_ids[:, None] == positive_ids[None, :]
    same_anchor = anchor_ids[:, None] == anchor_ids[None, :]
    mask = (same_positive | same_anchor) & ~torch.eye(len(text_ids), dtype=torch.bool, device=text_ids.device)
    if with_negatives:
        mask = torch.cat([mask, positive_ids[:, None] == text_ids[None, :, 2]], dim=1)
    return mask


class CachedMultipleNegativesRankingLoss(MultipleNegativesRankingLoss):
    """:class:`MultipleNegativesRankingLoss` for batches bigger than memory allows: the same loss and the
    same gradient, with the forward pass run ``mini_batch_size`` texts at a time.

    The training loop embeds the batch in chunks without gradients, takes the loss and its gradient with
    respect to the embeddings over the whole batch, then embeds each chunk again and backpropagates its
    share, replaying the random state so that dropout is the same both times (the "gradient cache" of
    Gao et al., 2021; ``sentsim.training.chunks``). It costs one forward pass more per step. Sentence-
    transformers' constructor; ``show_progress_bar`` is accepted and shows nothing.
    """

    def __init__(self, model: nn.Module | None = None, scale: float = 20.0, similarity_fct=None,
                 mini_batch_size: int = 32, gather_across_devices: bool = False,
                 show_progress_bar: bool = False) -> None:
        """Create the loss.

        Args:
            model, scale, similarity_fct: as :class:`MultipleNegativesRankingLoss`.
            mini_batch_size: texts per forward pass (memory), not what is learnt.
            gather_across_devices: must stay False: each process ranks within its own batch.
            show_progress_bar: accepted for sentence-transformers' signature.
        """
        super().__init__(model, scale=scale, similarity_fct=similarity_fct)
        if isinstance(mini_batch_size, bool) or not isinstance(mini_batch_size, int) or mini_batch_size < 1:
            raise ConfigError(f"mini_batch_size must be a whole number of at least 1, not {mini_batch_size!r}")
        if gather_across_devices:
            raise ConfigError("gather_across_devices=True is not supported: each process ranks its anchors "
                              "against its own batch")
        self.mini_batch_size = mini_batch_size
        self.show_progress_bar = show_progress_bar
