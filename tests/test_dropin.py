"""The sentence-transformers calls of issue 11, run on sentsim with only the import changed (tiny model)."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.conftest import TRAIN_PAIRS

S1 = [a for a, _, _ in TRAIN_PAIRS]
S2 = [b for _, b, _ in TRAIN_PAIRS]
SCORES = [s for _, _, s in TRAIN_PAIRS]


def test_encode_keywords_and_return_types(tiny_model):
    texts = S1[:3]
    default = tiny_model.encode(texts, show_progress_bar=False, dtype="fp32")
    assert isinstance(default, np.ndarray) and default.shape == (3, 32) and default.dtype == np.float32
    assert tiny_model.encode(texts[0], dtype="fp32").shape == (32,)
    np.testing.assert_allclose(tiny_model.encode(texts, convert_to_numpy=True, dtype="fp32"), default, atol=1e-6)
    as_tensor = tiny_model.encode(texts, convert_to_tensor=True, device="cpu", dtype="fp32")
    assert isinstance(as_tensor, torch.Tensor) and as_tensor.shape == (3, 32)
    as_list = tiny_model.encode(texts, convert_to_numpy=False, dtype="fp32")
    assert isinstance(as_list, list) and all(isinstance(row, torch.Tensor) for row in as_list)
    unit = tiny_model.encode(texts, normalize_embeddings=True, dtype="fp32")
    np.testing.assert_allclose(np.linalg.norm(unit, axis=1), 1.0, atol=1e-5)
    tokens = tiny_model.encode(texts, output_value="token_embeddings", dtype="fp32")
    lengths = [len(ids) for ids in tiny_model.token_ids(texts)]
    assert [row.shape for row in tokens] == [(length, 32) for length in lengths]
    everything = tiny_model.encode(texts[0], output_value=None, dtype="fp32")
    assert set(everything) == {"input_ids", "token_type_ids", "attention_mask", "modality", "token_embeddings",
                               "sentence_embedding"}  # sentence-transformers' keys
    assert everything["modality"] == "text" and not everything["token_type_ids"].any()
    assert everything["token_type_ids"].shape == everything["input_ids"].shape
    truncated = tiny_model.encode(texts, truncate_dim=8, dtype="fp32")
    np.testing.assert_allclose(truncated, default[:, :8], atol=1e-6)


def test_encode_output_precision_and_unknown_keywords(tiny_model):
    embeddings = tiny_model.encode(S1, dtype="fp32")
    binary = tiny_model.encode(S1, precision="ubinary", dtype="fp32")
    assert binary.dtype == np.uint8 and binary.shape == (len(S1), 4)
    np.testing.assert_array_equal(np.unpackbits(binary, axis=1).astype(bool), embeddings > 0)
    int8 = tiny_model.encode(S1, precision="int8", dtype="fp32")
    assert int8.dtype == np.int8 and int8.min() >= -128
    with pytest.raises(TypeError, match="nonsense"):
        tiny_model.encode(S1, nonsense=True)
    with pytest.raises(ValueError, match="precision"):
        tiny_model.encode(S1, precision="fp32")  # the compute type is dtype=, not precision=


def test_prompts_and_encode_query_document(tiny_transformer_dir, tmp_path: Path):
    from sentsim import SentenceTransformer

    model = SentenceTransformer.from_transformer(tiny_transformer_dir)
    model.prompts = {"query": "a ", "document": "the "}
    model.save(tmp_path / "m")
    loaded = SentenceTransformer(tmp_path / "m")
    assert loaded.prompts == {"query": "a ", "document": "the "}
    np.testing.assert_allclose(loaded.encode_query("dog", dtype="fp32"), loaded.encode("a dog", dtype="fp32"),
                               atol=1e-6)
    np.testing.assert_allclose(loaded.encode_document("dog", dtype="fp32"), loaded.encode("the dog", dtype="fp32"),
                               atol=1e-6)
    np.testing.assert_allclose(loaded.encode("dog", prompt_name="query", dtype="fp32"),
                               loaded.encode("dog", prompt="a ", dtype="fp32"), atol=1e-6)
    with pytest.raises(ValueError, match="prompt name"):
        loaded.encode("dog", prompt_name="missing")


def test_similarity_matrix_pairwise_and_fn_name(tiny_model, tmp_path: Path):
    from sentsim import SentenceTransformer, util

    a, b = tiny_model.encode(S1[:2], dtype="fp32"), tiny_model.encode(S2[:3], dtype="fp32")
    matrix = tiny_model.similarity(a, b)
    assert isinstance(matrix, torch.Tensor) and matrix.shape == (2, 3)
    torch.testing.assert_close(matrix, util.cos_sim(a, b))
    expected = (a / np.linalg.norm(a, axis=1, keepdims=True)) @ (b / np.linalg.norm(b, axis=1, keepdims=True)).T
    np.testing.assert_allclose(matrix.numpy(), expected, atol=1e-5)
    pairwise = tiny_model.similarity_pairwise(a, b[:2])
    torch.testing.assert_close(pairwise, torch.diagonal(matrix[:, :2]))
    tiny_model.similarity_fn_name = "euclidean"
    np.testing.assert_allclose(tiny_model.similarity(a, b).numpy(),
                               -np.linalg.norm(a[:, None] - b[None], axis=2), atol=1e-4)
    tiny_model.similarity_fn_name = "dot"
    np.testing.assert_allclose(tiny_model.similarity(a, b).numpy(), a @ b.T, atol=1e-4)
    tiny_model.save(tmp_path / "m")
    assert SentenceTransformer(tmp_path / "m").similarity_fn_name == "dot"
    with pytest.raises(ValueError):
        tiny_model.similarity_fn_name = "jaccard"


def test_tokenizer_tokenize_save_pretrained(tiny_model, tmp_path: Path):
    from sentsim import SentenceTransformer

    assert tiny_model.tokenizer is tiny_model.transformer.tokenizer
    features = tiny_model.tokenize(S1[:2])
    assert features["input_ids"].shape == features["attention_mask"].shape and features["input_ids"].ndim == 2
    assert tiny_model.get_max_seq_length() == tiny_model.max_seq_length
    tiny_model.save_pretrained(str(tmp_path / "saved"))
    card = (tmp_path / "saved" / "README.md").read_text()  # save() always writes a card
    assert card.startswith("---\nlibrary_name: sentence-transformers") and "sentsim calibrate" in card
    assert 'model = SentenceTransformer("sentence_transformers_model_id")' in card  # their placeholder id
    tiny_model.save(tmp_path / "named", model_name="someone/my-model")
    assert 'model = SentenceTransformer("someone/my-model")' in (tmp_path / "named" / "README.md").read_text()
    np.testing.assert_allclose(SentenceTransformer(tmp_path / "saved").encode(S1, dtype="fp32"),
                               tiny_model.encode(S1, dtype="fp32"), atol=1e-6)


def test_util_search_mining_communities_quantize(tiny_model):
    from sentsim import util

    corpus = tiny_model.encode(S1 + S2, convert_to_tensor=True, dtype="fp32")
    queries = corpus[:2]
    hits = util.semantic_search(queries, corpus, top_k=3)
    scores = util.cos_sim(queries, corpus)
    for row, query_hits in enumerate(hits):
        best = torch.topk(scores[row], 3)
        assert [hit["corpus_id"] for hit in query_hits] == best.indices.tolist()
        np.testing.assert_allclose([hit["score"] for hit in query_hits], best.values.numpy(), atol=1e-6)
    assert hits[0][0]["score"] == pytest.approx(1.0, abs=1e-5)  # a query is in the corpus
    chunked = util.semantic_search(queries, corpus, top_k=3, query_chunk_size=1, corpus_chunk_size=4)
    # The random tiny model's cosines nearly tie, so chunking may swap ids of equal scores: compare scores.
    np.testing.assert_allclose([[h["score"] for h in q] for q in chunked], [[h["score"] for h in q] for q in hits],
                               atol=1e-5)
    mined = util.paraphrase_mining(tiny_model, S1 + S2, top_k=2)
    assert mined and all(i < j for _, i, j in mined) and mined == sorted(mined, key=lambda t: -t[0])
    full = util.cos_sim(corpus, corpus).numpy()
    assert all(abs(full[i, j] - score) < 1e-5 for score, i, j in mined)
    basis = torch.eye(6)
    grouped = torch.stack([basis[0], basis[1], basis[0], basis[0], basis[2], basis[1], basis[1], basis[1]])
    communities = util.community_detection(grouped, threshold=0.9, min_community_size=3)
    assert [sorted(c) for c in communities] == [[1, 5, 6, 7], [0, 2, 3]]
    assert communities[0][0] in (1, 5, 6, 7)  # the centre leads its community
    assert util.dot_score(queries, corpus).shape == (2, len(corpus))
    assert util.pairwise_cos_sim(queries, queries).numpy() == pytest.approx([1.0, 1.0], abs=1e-6)
    torch.testing.assert_close(util.normalize_embeddings(queries).norm(dim=1), torch.ones(2))
    assert util.quantize_embeddings(corpus.numpy(), precision="binary").dtype == np.int8


def test_evaluator_keys_values_primary_metric_and_csv(tiny_model, tmp_path: Path):
    from scipy.stats import pearsonr, spearmanr

    from sentsim.evaluation import EmbeddingSimilarityEvaluator

    evaluator = EmbeddingSimilarityEvaluator(S1, S2, SCORES, name="sts-dev", dtype="fp32")
    metrics = evaluator(tiny_model, output_path=str(tmp_path))
    assert set(metrics) == {"sts-dev_pearson_cosine", "sts-dev_spearman_cosine"}
    assert evaluator.primary_metric == "sts-dev_spearman_cosine"
    from sentsim import util

    # Same float32 path as the evaluator: the random tiny model's cosines nearly tie, so a float64 reference
    # would rank them differently (the comparison with sentence-transformers is in the integration tests).
    cosines = util.pairwise_cos_sim(tiny_model.encode(S1, dtype="fp32"), tiny_model.encode(S2, dtype="fp32")).numpy()
    assert metrics["sts-dev_spearman_cosine"] == pytest.approx(spearmanr(SCORES, cosines)[0], abs=1e-6)
    assert metrics["sts-dev_pearson_cosine"] == pytest.approx(pearsonr(SCORES, cosines)[0], abs=1e-5)
    rows = list(csv.reader((tmp_path / "similarity_evaluation_sts-dev_results.csv").read_text().splitlines()))
    assert rows[0] == ["epoch", "steps", "cosine_pearson", "cosine_spearman"] and len(rows) == 2
    several = EmbeddingSimilarityEvaluator(S1, S2, SCORES, similarity_fn_names=["cosine", "dot"], write_csv=False)
    keys = set(several(tiny_model))
    assert keys == {"pearson_cosine", "spearman_cosine", "pearson_dot", "spearman_dot", "pearson_max",
                    "spearman_max"} and several.primary_metric == "spearman_max"
    with pytest.raises(TypeError, match="anything"):
        EmbeddingSimilarityEvaluator(S1, S2, SCORES, anything=1)


def test_mnrl_masks_in_batch_duplicates():
    from sentsim.losses import MultipleNegativesRankingLoss, in_batch_duplicates

    # Rows 0 and 1 share their positive text; rows 0 and 2 share their anchor (one premise, two entailments).
    text_ids = torch.tensor([[0, 10], [1, 10], [0, 11], [3, 12]])
    mask = in_batch_duplicates(text_ids, with_negatives=False)
    expected = torch.zeros(4, 4, dtype=torch.bool)
    expected[0, 1] = expected[1, 0] = expected[0, 2] = expected[2, 0] = True
    assert torch.equal(mask, expected)
    torch.manual_seed(0)
    anchors, positives = torch.randn(4, 8), torch.randn(4, 8)
    positives[1] = positives[0]  # the same text has the same embedding
    loss = MultipleNegativesRankingLoss(None)
    masked, unmasked = loss(anchors, positives, text_ids=text_ids), loss(anchors, positives)
    scores = torch.nn.functional.normalize(anchors, dim=1) @ torch.nn.functional.normalize(positives, dim=1).T * 20
    scores = scores.masked_fill(expected, float("-inf"))
    assert masked == pytest.approx(float(torch.nn.functional.cross_entropy(scores, torch.arange(4))), abs=1e-5)
    assert masked < unmasked  # the duplicate no longer counts as a negative
    negatives = torch.randn(4, 8)
    with_negatives = loss(anchors, positives, negatives, text_ids=torch.tensor([[0, 10, 10], [1, 10, 20],
                                                                                [0, 11, 21], [3, 12, 22]]))
    assert torch.isfinite(with_negatives)


def test_mnrl_trains_through_fit_and_trainer(tiny_transformer_dir, tmp_path: Path):
    from torch.utils.data import DataLoader

    from sentsim import (
        InputExample,
        SentenceTransformer,
        SentenceTransformerTrainer,
        SentenceTransformerTrainingArguments,
        losses,
    )

    model = SentenceTransformer(str(tiny_transformer_dir))
    before = model.encode(S1, dtype="fp32")
    examples = [InputExample(texts=[a, b]) for a, b in zip(S1, S2, strict=True)]
    model.fit(train_objectives=[(DataLoader(examples, batch_size=4), losses.MultipleNegativesRankingLoss(model))],
              epochs=1, warmup_steps=0, show_progress_bar=False)
    assert np.abs(model.encode(S1, dtype="fp32") - before).max() > 1e-4
    args = SentenceTransformerTrainingArguments(output_dir=str(tmp_path / "out"), num_train_epochs=1,
                                                per_device_train_batch_size=4, learning_rate=1e-3, seed=1,
                                                eval_strategy="epoch", logging_steps=1, report_to="none")
    trainer = SentenceTransformerTrainer(model=model, args=args,
                                         train_dataset={"anchor": S1, "positive": S2, "negative": S2[::-1]},
                                         eval_dataset={"sentence1": S1, "sentence2": S2, "score": SCORES},
                                         loss=losses.MultipleNegativesRankingLoss(model))
    output = trainer.train()
    assert output.global_step == 3 and output.training_loss > 0
    assert "eval_spearman_cosine" in output.metrics
    assert (tmp_path / "out" / "modules.json").is_file()


def test_trainer_scored_dataset_and_refusals(tiny_transformer_dir):
    datasets = pytest.importorskip("datasets")
    from sentsim import SentenceTransformer, SentenceTransformerTrainer, SentenceTransformerTrainingArguments, losses
    from sentsim.errors import ConfigError

    model = SentenceTransformer(str(tiny_transformer_dir))
    train = datasets.Dataset.from_dict({"sentence1": S1, "sentence2": S2, "score": SCORES})
    args = SentenceTransformerTrainingArguments(output_dir=None, max_steps=2, per_device_train_batch_size=4,
                                                save_strategy="no", bf16=False, warmup_ratio=0.1, weight_decay=0.01,
                                                load_best_model_at_end=False, save_steps=10, eval_steps=1)
    output = SentenceTransformerTrainer(model, args=args, train_dataset=train,
                                        loss=losses.CoSENTLoss(model)).train()
    assert output.global_step == 2
    with pytest.raises(ConfigError, match="does not support deepspeed"):
        SentenceTransformerTrainingArguments(output_dir="x", deepspeed="ds_config.json")
    with pytest.raises(ConfigError, match="lr_scheduler_type='reduce_lr_on_plateau' is not supported"):
        SentenceTransformerTrainingArguments(output_dir="x", lr_scheduler_type="reduce_lr_on_plateau")
    with pytest.raises(ConfigError, match="compute_metrics"):
        SentenceTransformerTrainer(model, args=args, train_dataset=train, compute_metrics=len)
    with pytest.raises(ConfigError, match="two text columns"):
        SentenceTransformerTrainer(model, args=args, train_dataset={"sentence1": S1, "score": SCORES}).train()


def test_cross_encoder_predict_and_rank(tiny_transformer_dir, tmp_path: Path):
    from sentsim import CrossEncoder

    trained = CrossEncoder.from_pretrained(tiny_transformer_dir, seed=3)
    trained.save(tmp_path / "ce")
    model = CrossEncoder(str(tmp_path / "ce"))
    pairs = list(zip(S1[:4], S2[:4], strict=True))
    scores = model.predict(pairs, batch_size=2, show_progress_bar=False, dtype="fp32")
    assert isinstance(scores, np.ndarray) and scores.shape == (4,)
    np.testing.assert_allclose(scores, model.score_pairs(S1[:4], S2[:4], symmetric=False, dtype="fp32"), atol=1e-6)
    assert isinstance(model.predict(pairs[0], dtype="fp32"), np.floating)
    assert isinstance(model.predict(pairs, convert_to_tensor=True, dtype="fp32"), torch.Tensor)
    ranked = model.rank(S1[0], S2[:4], top_k=2, return_documents=True, dtype="fp32")
    order = np.argsort(-model.predict([(S1[0], doc) for doc in S2[:4]], dtype="fp32"))
    assert [hit["corpus_id"] for hit in ranked] == order[:2].tolist() and ranked[0]["text"] == S2[order[0]]


def test_anchor_positive_reader(tmp_path: Path):
    from sentsim.data import read_anchor_positive_file
    from sentsim.errors import DataFormatError

    path = tmp_path / "nli.csv"
    path.write_text("anchor,positive,negative\na dog,a dog runs,a cat\na man,a person,a plane\n")
    rows = read_anchor_positive_file(path)
    assert rows.anchors == ["a dog", "a man"] and rows.negatives == ["a cat", "a plane"]
    pairs_only = tmp_path / "pairs.jsonl"
    pairs_only.write_text('{"anchor": "a dog", "positive": "a dog runs"}\n')
    assert read_anchor_positive_file(pairs_only).negatives is None
    bad = tmp_path / "bad.csv"
    bad.write_text("anchor,positive\na dog,\n")
    with pytest.raises(DataFormatError, match=r"bad.csv.*line 2.*empty sentence in column 'positive'"):
        read_anchor_positive_file(bad)
    missing = tmp_path / "missing.csv"
    missing.write_text("anchor,text\na,b\n")
    with pytest.raises(DataFormatError, match="header lacks column 'positive'"):
        read_anchor_positive_file(missing)


def test_building_a_model_from_modules_as_sentence_transformers_classic_examples_do(tiny_transformer_dir):
    from sentsim import SentenceTransformer, models

    word_embedding_model = models.Transformer(str(tiny_transformer_dir), max_seq_length=64)
    dimension = word_embedding_model.get_word_embedding_dimension()
    pooling_model = models.Pooling(dimension, pooling_mode_mean_tokens=True)
    model = SentenceTransformer(modules=[word_embedding_model, pooling_model])
    assert model.get_sentence_embedding_dimension() == pooling_model.get_sentence_embedding_dimension() == dimension
    assert pooling_model.pooling_mode == "mean"
    assert models.Pooling(dimension, "cls").modes == ("cls",)
    assert models.Pooling(dimension, pooling_mode=["mean", "max"]).get_sentence_embedding_dimension() == 2 * dimension
    with pytest.raises(TypeError, match="pooling_mode_average"):
        models.Pooling(dimension, pooling_mode_average=True)
    assert model.encode(["a dog runs"], dtype="fp32").shape == (1, dimension)


def test_sentence_transformers_names_sentsim_lacks_are_said_by_name():
    from sentsim import losses, util

    with pytest.raises(AttributeError, match=r"sentsim\.losses has no ContrastiveLoss: sentsim trains with AnglELoss"):
        losses.ContrastiveLoss  # noqa: B018
    with pytest.raises(AttributeError, match=r"sentsim\.util has no mine_hard_negatives"):
        util.mine_hard_negatives  # noqa: B018
    assert not hasattr(losses, "__wrapped__") and hasattr(losses, "CoSENTLoss")


CLASSIC_PATHS = {  # module → names that sentence-transformers code imports from it
    "readers": ["InputExample"], "datasets": ["SentencesDataset", "NoDuplicatesDataLoader"],
    "trainer": ["SentenceTransformerTrainer"],
    "model_card": ["SentenceTransformerModelCardData"], "similarity_functions": ["SimilarityFunction"],
    "quantization": ["quantize_embeddings"], "cross_encoder": ["CrossEncoder"],
    "training_args": ["SentenceTransformerTrainingArguments", "BatchSamplers", "MultiDatasetBatchSamplers"],
    "evaluation": ["EmbeddingSimilarityEvaluator", "SequentialEvaluator", "BinaryClassificationEvaluator",
                   "TripletEvaluator", "ParaphraseMiningEvaluator", "InformationRetrievalEvaluator",
                   "MSEEvaluator", "TranslationEvaluator", "RerankingEvaluator",
                   "SentenceEvaluator", "SimilarityFunction"],
}


@pytest.mark.parametrize("module", sorted(CLASSIC_PATHS))
def test_sentence_transformers_import_paths_work_with_the_import_line_changed(module):
    """``from sentence_transformers.X import Y`` → ``from sentsim.X import Y``, for the paths scripts use."""
    import importlib

    import sentsim

    ours = importlib.import_module(f"sentsim.{module}")
    for name in CLASSIC_PATHS[module]:
        assert getattr(ours, name) is getattr(sentsim, name, getattr(ours, name)), name
    theirs = pytest.importorskip(f"sentence_transformers.{module}")
    assert all(hasattr(theirs, name) for name in CLASSIC_PATHS[module])  # the same names live there


def test_a_custom_evaluator_written_for_sentence_transformers_runs_and_reaches_the_card(tiny_model, tmp_path):
    """Their documented pattern: subclass SentenceEvaluator, super().__init__(), prefix_name_to_metrics and
    store_metrics_in_model_card_data; sentsim's own evaluators record their figures in the card as theirs do."""
    from sentsim import SentenceTransformerTrainer
    from sentsim.evaluation import EmbeddingSimilarityEvaluator, SentenceEvaluator
    from sentsim.training_args import SentenceTransformerTrainingArguments

    class NormEvaluator(SentenceEvaluator):
        def __init__(self, texts, name=""):
            super().__init__()
            self.texts, self.name, self.primary_metric = texts, name, "mean_norm"

        def __call__(self, model, output_path=None, epoch=-1, steps=-1):
            norms = np.linalg.norm(model.encode(self.texts, convert_to_numpy=True), axis=1)
            metrics = self.prefix_name_to_metrics({"mean_norm": norms.mean()}, self.name)
            self.store_metrics_in_model_card_data(model, metrics, epoch, steps)
            return metrics

    custom = NormEvaluator(S1, name="norms")
    assert custom.description == "Norm" and custom.greater_is_better and custom.get_config_dict() == {}
    metrics = custom(tiny_model)
    assert list(metrics) == ["norms_mean_norm"] and isinstance(metrics["norms_mean_norm"], float)
    assert custom.primary_metric == "norms_mean_norm"
    SentenceTransformerTrainer(model=tiny_model, evaluator=custom, args=SentenceTransformerTrainingArguments(
        max_steps=1, eval_strategy="steps", eval_steps=1, save_strategy="no", disable_tqdm=True),
        train_dataset={"sentence1": S1, "sentence2": S2, "score": SCORES}).train()
    EmbeddingSimilarityEvaluator(S1, S2, SCORES, name="sts-dev")(tiny_model)
    latest = tiny_model.model_card_data.latest_metrics()
    assert {"norms_mean_norm", "sts-dev_spearman_cosine"} <= set(latest)
    tiny_model.save(tmp_path / "model")
    card = (tmp_path / "model" / "README.md").read_text(encoding="utf-8")
    assert "sts-dev_spearman_cosine" in card and "norms_mean_norm" in card


def test_the_classic_no_duplicates_loader_batches_without_repeats_and_trains_mnrl(tiny_model):
    """Their NLI training script: MNRL through fit with ``NoDuplicatesDataLoader(examples, batch_size)``."""
    from sentsim import InputExample, losses
    from sentsim.datasets import NoDuplicatesDataLoader

    examples = [InputExample(texts=[a, b]) for a, b in zip(S1, S2, strict=True)]
    examples += [InputExample(texts=[S1[0].upper() + " ", S2[1]])]  # the same texts as two rows above
    for seed in range(30):  # orders that put the two rows in one batch come up among these
        loader = NoDuplicatesDataLoader(examples, batch_size=4, seed=seed)
        batches = list(loader)
        assert len(batches) == len(loader) == len(examples) // 4
        for batch in batches:
            texts = [text.strip().lower() for example in batch for text in example.texts]
            assert len(batch) == 4 and len(texts) == len(set(texts))
    before = [value.clone() for value in tiny_model.parameters()]
    tiny_model.fit(train_objectives=[(loader, losses.MultipleNegativesRankingLoss(tiny_model))], epochs=1,
                   warmup_steps=0, show_progress_bar=False)
    assert any(not torch.equal(value, old) for value, old in zip(tiny_model.parameters(), before, strict=True))

