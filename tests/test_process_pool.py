"""sentence-transformers' multi-process encoding on both backends: same vectors, order, errors, clean stops."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from sentsim.errors import ConfigError
from sentsim.inference.forward import native_bf16

TEXTS = [f"{'a man is playing a flute' if index % 3 else 'the dog runs'} {'fast ' * (index % 5)}"
         for index in range(41)]


@pytest.fixture(scope="module")
def model(tiny_transformer_dir: Path):
    from sentsim import SentenceTransformer

    return SentenceTransformer.from_transformer(tiny_transformer_dir, pooling="mean")


@pytest.fixture(scope="module")
def pool(model):
    pool = model.start_multi_process_pool(["cpu", "cpu"])
    yield pool
    model.stop_multi_process_pool(pool)


def test_a_pool_gives_the_vectors_of_encode_in_order(model, pool) -> None:
    expected = model.encode(TEXTS, dtype="fp32")
    np.testing.assert_allclose(model.encode(TEXTS, pool=pool, chunk_size=4, dtype="fp32"), expected, atol=1e-6)
    # sentence-transformers' call, default dtype: bf16 where it is native, whose bits follow how the texts are
    # batched (the pool's chunks batch them otherwise), so equal to bf16's precision; fp32 above is exact
    np.testing.assert_allclose(model.encode_multi_process(TEXTS, pool, batch_size=8), model.encode(TEXTS, batch_size=8),
                               atol=2e-3 if native_bf16(torch.device("cpu")) else 1e-6)
    one = model.encode(TEXTS[0], pool=pool, dtype="fp32")
    assert one.shape == expected[0].shape and np.allclose(one, expected[0], atol=1e-6)
    assert model.encode([], pool=pool).shape == (0,)
    tensor = model.encode(TEXTS[:5], pool=pool, convert_to_tensor=True, normalize_embeddings=True)
    assert isinstance(tensor, torch.Tensor) and torch.allclose(tensor.norm(dim=1), torch.ones(5), atol=1e-5)


def test_output_precision_is_taken_over_all_texts_as_without_a_pool(model, pool) -> None:
    for precision in ("int8", "ubinary"):
        np.testing.assert_array_equal(model.encode(TEXTS, pool=pool, chunk_size=3, precision=precision, dtype="fp32"),
                                      model.encode(TEXTS, precision=precision, dtype="fp32"))


def test_errors_in_a_worker_reach_the_caller_and_the_pool_keeps_working(model, pool) -> None:
    with pytest.raises(ValueError, match="prompt name 'nope'"):
        model.encode(TEXTS, pool=pool, prompt_name="nope")
    with pytest.raises(ConfigError, match="sentence embeddings only"):
        model.encode(TEXTS, pool=pool, output_value="token_embeddings")
    with pytest.raises(ConfigError, match="chunk_size"):
        model.encode(TEXTS, pool=pool, chunk_size=0)
    assert model.encode(TEXTS[:3], pool=pool).shape == (3, model.embedding_dimension)


def test_a_device_list_runs_a_pool_for_the_call_only(model) -> None:
    import multiprocessing

    before = set(multiprocessing.active_children())
    vectors = model.encode(TEXTS[:6], device=["cpu"], dtype="fp32")
    np.testing.assert_allclose(vectors, model.encode(TEXTS[:6], dtype="fp32"), atol=1e-6)
    assert set(multiprocessing.active_children()) <= before


def test_a_dead_worker_is_reported_not_waited_for(model) -> None:
    pool = model.start_multi_process_pool(["cpu"])
    try:
        pool["processes"][0].kill()
        pool["processes"][0].join()
        with pytest.raises(RuntimeError, match="pool process ended"):
            model.encode(TEXTS, pool=pool)
    finally:
        model.stop_multi_process_pool(pool)
    model.stop_multi_process_pool(pool)  # a second stop does nothing
    assert pool["processes"] == [] and "input" not in pool


def test_keyword_arguments_the_model_does_not_use_are_a_value_error(model) -> None:
    """sentence-transformers raises ValueError for them (MTEB-style task_name, prompt_type ...)."""
    assert model.get_model_kwargs() == []
    with pytest.raises(ValueError, match=r"does not use: \['prompt_type', 'task_name'\]"):
        model.encode(TEXTS, task_name="STSBenchmark", prompt_type=None)
    with pytest.raises(TypeError, match="nonsense"):  # and what Python raises for any other call
        model.encode(TEXTS, nonsense=True)


def test_the_onnx_encoder_pickles_and_runs_in_a_pool(model, tmp_path: Path) -> None:
    from sentsim.export.onnx_export import export_model
    from sentsim.inference.onnx_backend import OnnxSentenceEncoder

    folder = export_model(model.save(tmp_path / "model"), tmp_path / "exported", quantize="none")
    encoder = OnnxSentenceEncoder(folder, threads=2)
    encoder.max_seq_length = 8
    copy = pickle.loads(pickle.dumps(encoder))
    assert copy.max_seq_length == 8 and copy.threads == 2 and copy._lone_session is None
    np.testing.assert_array_equal(copy.encode(TEXTS), encoder.encode(TEXTS))
    pool = encoder.start_multi_process_pool(["cpu", "cpu"])
    try:
        np.testing.assert_allclose(encoder.encode(TEXTS, pool=pool, chunk_size=5), encoder.encode(TEXTS), atol=1e-5)
    finally:
        encoder.stop_multi_process_pool(pool)
    with pytest.raises(ValueError, match="does not use"):
        encoder.encode(TEXTS, task_name="x")
    with pytest.raises(ConfigError, match="onnx backend runs on the CPU"):
        encoder.encode(TEXTS, device=["cuda:0"])


def test_auto_is_decided_for_the_whole_call_not_per_chunk(model) -> None:
    """A chunk of a large call must not fall back to fp32 because it is small itself (it would differ
    from encode on a CPU with native bf16); a call that is one small batch stays fp32 in every chunk."""
    from sentsim.inference.forward import resolve_precision
    from sentsim.inference.process_pool import _one_small_batch, _settled_dtype

    options = {"dtype": "auto", "batch_size": 8, "prompt": None, "prompt_name": None}
    assert _one_small_batch(model, ["a dog", "a cat"], options)
    assert not _one_small_batch(model, TEXTS, options)  # more than one batch: no tokenising needed
    assert not _one_small_batch(model, ["a dog", "a cat"], {**options, "prompt": "word " * 40})
    assert not _one_small_batch(model, ["a dog"], {**options, "dtype": "fp32"})
    assert _settled_dtype(model, options, small_call=True)["dtype"] == "fp32"
    assert _settled_dtype(model, options, small_call=False)["dtype"] == resolve_precision("auto", model.device)
    assert _settled_dtype(model, {**options, "dtype": "bf16"}, small_call=True)["dtype"] == "bf16"
