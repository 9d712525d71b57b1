"""Speed levers that must not change results: the best checkpoint's dev embeddings are reused, not re-encoded."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from sentsim.data import PairDataset, ScoredPair
from sentsim.evaluation.evaluators import PairSetEvaluator
from sentsim.inference.pairs import encode_pairs
from sentsim.training import TrainConfig, train

from .conftest import TRAIN_PAIRS


def test_best_checkpoint_dev_embeddings_are_those_of_the_restored_model(tiny_transformer_dir: Path) -> None:
    from sentsim import SentenceTransformer

    model = SentenceTransformer.from_transformer(tiny_transformer_dir, pooling="mean")
    dev = PairDataset(pairs=[ScoredPair(a, b, score) for a, b, score in TRAIN_PAIRS[::-1]], source="dev")
    evaluator = PairSetEvaluator(dev, batch_size=4, dtype="fp32")
    sentences_a, sentences_b, labels = zip(*TRAIN_PAIRS, strict=True)
    result = train(model, sentences_a=list(sentences_a), sentences_b=list(sentences_b), labels=list(labels),
                   config=TrainConfig(batch_size=2, epochs=3, learning_rate=1e-3, dtype="fp32", evaluation_steps=2),
                   evaluator=evaluator, quiet=True)
    evaluations = [record for record in result.records if record["kind"] == "eval"]
    assert len(evaluations) > 3 and result.best_score == max(record["spearman_cosine"] for record in evaluations)
    kept = evaluator.embeddings_scoring(result.best_score)
    assert kept is not None
    fresh = encode_pairs(model, dev.sentences1, dev.sentences2, batch_size=4, dtype="fp32")
    for reused, encoded in zip(kept, fresh, strict=True):
        np.testing.assert_allclose(reused, encoded, rtol=0, atol=1e-6)
    assert evaluator.embeddings_scoring(result.best_score - 1.0) is None
    assert evaluator.embeddings_scoring(None) is None
