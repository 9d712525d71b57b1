"""Evaluation: metrics, evaluating a model on pairs, comparing two models, evaluators for training."""

from sentsim.lazy import lazy_exports

_EXPORTS = {
    "SentenceEvaluator": "sentsim.evaluation.evaluator_base",
    "BaseEvaluator": "sentsim.evaluation.evaluator_base",
    "BinaryClassificationEvaluator": "sentsim.evaluation.binary_classification",
    "EmbeddingSimilarityEvaluator": "sentsim.evaluation.evaluators",
    "PairSetEvaluator": "sentsim.evaluation.evaluators",
    "SequentialEvaluator": "sentsim.evaluation.evaluators",
    "ParaphraseMiningEvaluator": "sentsim.evaluation.paraphrase_mining",
    "InformationRetrievalEvaluator": "sentsim.evaluation.information_retrieval",
    "MSEEvaluator": "sentsim.evaluation.distillation",
    "RerankingEvaluator": "sentsim.evaluation.reranking",
    "TranslationEvaluator": "sentsim.evaluation.distillation",
    "TripletEvaluator": "sentsim.evaluation.triplet",
    "SimilarityFunction": "sentsim.evaluation.evaluators",
}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
__all__ = list(_EXPORTS)
