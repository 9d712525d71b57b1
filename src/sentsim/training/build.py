"""The model a run starts from: the base model as it is, or its transformer with new pooling."""

from __future__ import annotations

from sentsim.encoders.bi_encoder import SentenceTransformer
from sentsim.models import Normalize
from sentsim.training.options import RunOptions


def build_model(options: RunOptions) -> SentenceTransformer:
    if options.pooling is not None:
        model = SentenceTransformer.from_transformer(options.base_model, pooling=options.pooling,
                                                     normalize=options.normalize,
                                                     allow_pickle=options.allow_pickle)
    else:
        model = SentenceTransformer(options.base_model, allow_pickle=options.allow_pickle)
        if options.normalize and not any(isinstance(module, Normalize) for module in model):
            model.append(Normalize())  # continue training with unit-length embeddings, as asked
    if options.max_seq_length is not None:
        model.max_seq_length = options.max_seq_length
    return model
