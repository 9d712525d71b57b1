"""The ONNX encoder answers sentence-transformers' calls as the torch model does (the fp32 file, so to 1e-5).

Code written for ``SentenceTransformer(path, backend="onnx")`` uses ``encode``'s prompts, output values,
output precisions and tensor options, ``similarity`` on embeddings, ``encode_query`` and
``max_seq_length``; each is checked here against sentsim's torch model on the same folder.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from sentsim.errors import ConfigError

SENTENCES = ["a man is playing a flute", "a dog is running in the park", "the red car",
             "two children are playing ball with a big red ball in the green field", "a"]
PROMPTS = {"query": "query: ", "document": "passage: "}


@pytest.fixture(scope="module")
def folder(tiny_transformer_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from sentsim import SentenceTransformer
    from sentsim.export.onnx_export import export_model

    model = SentenceTransformer.from_transformer(tiny_transformer_dir, pooling="mean")
    model.prompts, model.similarity_fn_name = dict(PROMPTS), "dot"
    saved = model.save(tmp_path_factory.mktemp("tiny-prompts") / "model")
    return export_model(saved, tmp_path_factory.mktemp("tiny-prompts-onnx") / "exported")


@pytest.fixture(scope="module")
def both(folder: Path) -> tuple:
    from sentsim import SentenceTransformer

    return (SentenceTransformer(folder, backend="onnx", model_kwargs={"file_name": "model.onnx"}),
            SentenceTransformer(folder))


def test_prompts_saved_with_the_model_apply_on_both_backends(both: tuple) -> None:
    onnx, torch_model = both
    assert onnx.prompts == torch_model.prompts == PROMPTS
    # dtype="fp32": the ONNX file is fp32, and torch's auto would be bf16 on a CPU with native bf16
    for call in (lambda model: model.encode_query(SENTENCES, dtype="fp32"),
                 lambda model: model.encode_document(SENTENCES, dtype="fp32"),
                 lambda model: model.encode(SENTENCES, prompt_name="query", dtype="fp32"),
                 lambda model: model.encode(SENTENCES, prompt="something else: ", dtype="fp32")):
        np.testing.assert_allclose(call(onnx), call(torch_model), atol=1e-5)
    plain, query = onnx.encode(SENTENCES[0]), onnx.encode_query(SENTENCES[0])
    assert plain.shape == query.shape and not np.allclose(plain, query)
    with pytest.raises(ValueError, match="prompt name"):
        onnx.encode(SENTENCES, prompt_name="nope")


def test_output_values_token_embeddings_and_all_outputs(both: tuple) -> None:
    onnx, torch_model = both
    ours, theirs = onnx.encode(SENTENCES, output_value="token_embeddings"), torch_model.encode(
        SENTENCES, output_value="token_embeddings", dtype="fp32")
    assert len(ours) == len(SENTENCES) and all(isinstance(row, torch.Tensor) for row in ours)
    for mine, reference in zip(ours, theirs, strict=True):
        assert mine.shape == reference.shape
        np.testing.assert_allclose(mine.numpy(), reference.numpy(), atol=1e-5)
    for precision in ("int8", "ubinary"):
        quantized = onnx.encode(SENTENCES, output_value="token_embeddings", precision=precision)
        reference = torch_model.encode(SENTENCES, output_value="token_embeddings", precision=precision, dtype="fp32")
        for mine, expected in zip(quantized, reference, strict=True):
            assert isinstance(mine, np.ndarray) and mine.dtype == expected.dtype and mine.shape == expected.shape
            assert np.abs(mine.astype(int) - expected.astype(int)).max() <= 1
    everything = onnx.encode(SENTENCES[:2], output_value=None)
    assert set(everything[0]) >= {"input_ids", "attention_mask", "token_embeddings", "sentence_embedding", "modality"}
    if "token_type_ids" in everything[0]:  # when the exported graph takes them (BERT does)
        assert not np.asarray(everything[0]["token_type_ids"]).any()
    np.testing.assert_allclose(everything[1]["sentence_embedding"].numpy(), onnx.encode(SENTENCES[1]), atol=1e-6)
    with pytest.raises(ValueError, match="output_value"):
        onnx.encode(SENTENCES, output_value="logits")


@pytest.mark.parametrize("precision", ["int8", "uint8", "binary", "ubinary"])
def test_output_precisions_quantise_as_the_torch_model(both: tuple, precision: str) -> None:
    onnx, torch_model = both
    ours, theirs = onnx.encode(SENTENCES, precision=precision), torch_model.encode(SENTENCES, precision=precision)
    assert ours.dtype == theirs.dtype and ours.shape == theirs.shape
    # Same buckets up to a float at a bucket edge (the two runtimes differ by ~1e-7).
    assert np.abs(ours.astype(np.int16) - theirs.astype(np.int16)).max() <= (1 if precision.endswith("int8") else 0)


def test_return_types_follow_the_torch_model(both: tuple) -> None:
    onnx, torch_model = both
    tensor = onnx.encode(SENTENCES, convert_to_tensor=True)
    assert isinstance(tensor, torch.Tensor) and tensor.shape == (len(SENTENCES), torch_model.embedding_dimension)
    rows = onnx.encode(SENTENCES, convert_to_numpy=False)
    assert isinstance(rows, list) and all(isinstance(row, torch.Tensor) and row.ndim == 1 for row in rows)
    for texts in ([], np.array(SENTENCES[:2]), tuple(SENTENCES[:2])):
        ours, theirs = onnx.encode(texts), torch_model.encode(texts)
        assert ours.shape == theirs.shape and ours.dtype == theirs.dtype
    assert onnx.encode(sentences=SENTENCES[:2]).shape == (2, torch_model.embedding_dimension)
    unit = onnx.encode(SENTENCES, normalize_embeddings=True, truncate_dim=8)
    assert unit.shape == (len(SENTENCES), 8) and np.allclose(np.linalg.norm(unit, axis=1), 1, atol=1e-5)


def test_similarity_takes_embeddings_under_the_models_function(both: tuple) -> None:
    onnx, torch_model = both
    assert onnx.similarity_fn_name == torch_model.similarity_fn_name == "dot"
    first, second = onnx.encode(SENTENCES[:2]), onnx.encode(SENTENCES[2:])
    matrix = onnx.similarity(first, second)
    assert isinstance(matrix, torch.Tensor) and matrix.shape == (2, len(SENTENCES) - 2)
    np.testing.assert_allclose(matrix.numpy(), torch_model.similarity(first, second).numpy(), atol=1e-6)
    np.testing.assert_allclose(onnx.similarity_pairwise(first, second[:2]).numpy(),
                               torch_model.similarity_pairwise(first, second[:2]).numpy(), atol=1e-6)
    assert np.allclose(onnx.pair_cosine(SENTENCES[:2], SENTENCES[2:4]),
                       torch_model.pair_cosine(SENTENCES[:2], SENTENCES[2:4], dtype="fp32"), atol=1e-5)


def test_numpy_similarity_matches_torch_for_every_function(monkeypatch: pytest.MonkeyPatch) -> None:
    """The light install's numpy scores (no torch there) equal torch's."""
    from sentsim.inference import similarity_any

    rng = np.random.default_rng(0)
    first, second = rng.normal(size=(3, 6)).astype(np.float32), rng.normal(size=(3, 6)).astype(np.float32)
    expected = {(name, pairwise): np.asarray(similarity_any.similarity_scores(first, second, name, pairwise=pairwise))
                for name in similarity_any.SIMILARITY_FN_NAMES for pairwise in (False, True)}
    monkeypatch.setattr(similarity_any, "torch_installed", lambda: False)
    for (name, pairwise), reference in expected.items():
        scores = similarity_any.similarity_scores(first, second, name, pairwise=pairwise)
        assert isinstance(scores, np.ndarray) and scores.shape == reference.shape
        np.testing.assert_allclose(scores, reference, atol=1e-5, err_msg=f"{name} pairwise={pairwise}")


def test_preprocess_tokenize_and_pair_inputs_match_the_torch_encoder(both: tuple) -> None:
    """sentence-transformers 6's ``preprocess`` (prompt included) and an empty list answer alike on both."""
    onnx, torch_model = both
    for model in both:
        assert model.tokenize([]) == {} and model.preprocess([]) == {}
        with pytest.raises(ValueError, match="processing_kwargs"):
            model.preprocess(["a"], processing_kwargs={})
        with pytest.raises(ConfigError, match=r"input 1 is a pair of texts.*CrossEncoder"):
            model.encode(["one", ("two", "three")])
    mine, reference = onnx.preprocess(SENTENCES, prompt="query: "), torch_model.preprocess(SENTENCES, prompt="query: ")
    for name in ("input_ids", "attention_mask"):
        np.testing.assert_array_equal(np.asarray(mine[name]), reference[name].numpy())
    np.testing.assert_array_equal(reference["input_ids"].numpy(),
                                  torch_model.tokenize(["query: " + text for text in SENTENCES])["input_ids"].numpy())


def test_max_seq_length_can_be_set_and_is_checked(folder: Path) -> None:
    from sentsim import SentenceTransformer

    onnx = SentenceTransformer(folder, backend="onnx", model_kwargs={"file_name": "model.onnx"})
    long_text = SENTENCES[3]
    onnx.max_seq_length = 5
    assert onnx.get_max_seq_length() == 5 and onnx.encode(long_text, output_value="token_embeddings").shape[0] == 5
    assert onnx.tokenize([long_text, "a"])["input_ids"].shape == (2, 5)
    for bad in (1, 10**6, "8", True):
        with pytest.raises(ConfigError, match="max_seq_length"):
            onnx.max_seq_length = bad


def test_compute_options_it_cannot_honour_are_refused(both: tuple) -> None:
    onnx, _ = both
    assert onnx.encode(SENTENCES[:1], device="cpu", dtype="fp32").shape[0] == 1
    with pytest.raises(ConfigError, match="CPU"):
        onnx.encode(SENTENCES, device="cuda")
    with pytest.raises(ConfigError, match="torch backend"):
        onnx.encode(SENTENCES, dtype="bf16")
    with pytest.raises(ValueError, match="precision"):
        onnx.encode(SENTENCES, precision="fp16")
    with pytest.raises(ValueError, match="batch_size"):
        onnx.encode(SENTENCES, batch_size=0)
    assert onnx.to("cpu") is onnx and onnx.eval() is onnx
    with pytest.raises(ConfigError, match="CPU"):
        onnx.to("cuda:0")
    with pytest.raises(ValueError, match="similarity_fn_name"):
        onnx.similarity_fn_name = "jaccard"


def test_sentence_transformers_evaluator_runs_on_the_onnx_encoder(both: tuple) -> None:
    """``EmbeddingSimilarityEvaluator`` with an output precision calls ``encode`` with all of its options."""
    from sentsim.evaluation import EmbeddingSimilarityEvaluator

    onnx, torch_model = both
    scores = [0.9, 0.1, 0.5, 0.3]
    evaluator = EmbeddingSimilarityEvaluator(SENTENCES[:4], SENTENCES[1:5], scores, precision="int8")
    ours, theirs = evaluator(onnx), evaluator(torch_model)
    assert set(ours) == set(theirs) and ours
    assert all(abs(ours[key] - theirs[key]) < 1e-6 for key in ours if "spearman" in key), (ours, theirs)


def test_search_and_dedup_commands_run_on_the_onnx_backend(folder: Path, tmp_path: Path, capsys) -> None:
    import json

    from sentsim import SentenceTransformer, util
    from sentsim.cli import main

    corpus, queries = tmp_path / "corpus.txt", tmp_path / "queries.txt"
    corpus.write_text("\n".join([*SENTENCES, SENTENCES[0]]) + "\n")
    queries.write_text("\n".join(SENTENCES[:2]) + "\n")
    assert main(["search", str(folder), str(queries), str(corpus), "-o", str(tmp_path / "hits.jsonl"),
                 "--top-k", "2", "--backend", "onnx"]) == 0
    assert "backend: onnx fp32" in capsys.readouterr().err
    torch_model = SentenceTransformer(folder)
    expected = util.semantic_search(torch_model.encode(SENTENCES[:2], dtype="fp32"),
                                    torch_model.encode([*SENTENCES, SENTENCES[0]], dtype="fp32"), top_k=2)
    records = [json.loads(line) for line in (tmp_path / "hits.jsonl").read_text().splitlines()]
    for record, hits in zip(records, expected, strict=True):
        np.testing.assert_allclose([hit["score"] for hit in record["hits"]], [hit["score"] for hit in hits], atol=1e-5)
    assert main(["dedup", str(folder), str(corpus), "-o", str(tmp_path / "dups.jsonl"), "--threshold", "0.9999",
                 "--backend", "onnx"]) == 0
    pairs = [json.loads(line) for line in (tmp_path / "dups.jsonl").read_text().splitlines()]
    assert any(pair["text_i"] == pair["text_j"] == SENTENCES[0] for pair in pairs)


def test_a_folder_without_onnx_files_is_exported_on_the_fly_as_sentence_transformers_does(
        tiny_transformer_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    from sentsim import SentenceTransformer
    from sentsim.inference.onnx_loading import onnx_encoder_from_arguments

    saved = SentenceTransformer.from_transformer(tiny_transformer_dir, pooling="mean").save(tmp_path / "plain")
    with caplog.at_level("WARNING"):
        onnx = SentenceTransformer(saved, backend="onnx")
    assert onnx.get_backend() == "onnx" and SentenceTransformer(saved).get_backend() == "torch"
    assert "exporting it to ONNX" in caplog.text and not (saved / "onnx").exists()  # the user's folder is untouched
    np.testing.assert_allclose(onnx.encode(SENTENCES), SentenceTransformer(saved).encode(SENTENCES, dtype="fp32"),
                               atol=1e-5)
    assert SentenceTransformer(saved, backend="onnx").folder == onnx.folder  # the same folder again: no second export
    with pytest.raises(OSError, match="no ONNX"):  # sentence-transformers raises OSError here too
        SentenceTransformer(saved, backend="onnx", model_kwargs={"export": False})
    with pytest.raises(OSError, match="sentsim export"):  # the torch-free stand-in has no exporter
        onnx_encoder_from_arguments(saved)


def test_constructor_errors_are_the_exception_types_sentence_transformers_code_catches(folder: Path) -> None:
    from sentsim import SentenceTransformer

    assert SentenceTransformer(folder, backend="onnx", model_kwargs={"provider": "CPUExecutionProvider"})
    with pytest.raises(ValueError, match="provider"):
        SentenceTransformer(folder, backend="onnx", model_kwargs={"provider": "CUDAExecutionProvider"})
    with pytest.raises(ValueError, match="backend"):
        SentenceTransformer(folder, backend="incorrect_backend")
    with pytest.raises(OSError, match="wrong_file_name"):
        SentenceTransformer(folder, backend="onnx", model_kwargs={"file_name": "wrong_file_name", "export": False})


def test_a_pooling_that_leaves_the_prompt_out_is_refused_with_a_prompt(folder: Path, tmp_path: Path) -> None:
    """The onnx backend does not leave prompt tokens out of its pooling: it says so instead of pooling them."""
    import json
    import shutil

    from sentsim.inference.onnx_backend import OnnxSentenceEncoder

    copy = tmp_path / "no-prompt-pooling"
    shutil.copytree(folder, copy)
    config_path = next(path for path in copy.rglob("config.json") if path.parent.name.endswith("Pooling"))
    config = json.loads(config_path.read_text())
    config_path.write_text(json.dumps({**config, "include_prompt": False}))
    encoder = OnnxSentenceEncoder(copy, file_name="model.onnx")
    assert encoder.encode(SENTENCES[:2]).shape[0] == 2  # no prompt: nothing to leave out
    with pytest.raises(ConfigError, match="include_prompt"):
        encoder.encode(SENTENCES[:2], prompt_name="query")
