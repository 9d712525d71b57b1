"""ONNX export and the torch-free ONNX Runtime backend: same embeddings as torch, variants, errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from sentsim.environment import onnx_isa
from sentsim.errors import ConfigError, MissingDependencyError, ModelLoadError, missing_dependency

SENTENCES = ["a man is playing a flute", "a dog is running in the park", "the red car",
             "two children are playing ball with a big red ball in the green field", "a"]


def _save_tiny(tiny_transformer_dir: Path, folder: Path, *, pooling: str | list[str] = "mean",
               normalize: bool = False) -> Path:
    from sentsim import SentenceTransformer

    model = SentenceTransformer.from_transformer(tiny_transformer_dir, pooling=pooling, normalize=normalize)
    return model.save(folder)


@pytest.fixture(scope="module")
def tiny_saved(tiny_transformer_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _save_tiny(tiny_transformer_dir, tmp_path_factory.mktemp("tiny-st") / "model")


@pytest.fixture(scope="module")
def tiny_exported(tiny_saved: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from sentsim.export.onnx_export import export_model

    return export_model(tiny_saved, tmp_path_factory.mktemp("tiny-onnx") / "exported", quantize="int8",
                        optimize=True)


def _torch_fp32(folder: Path, sentences: list[str]) -> np.ndarray:
    from sentsim import SentenceTransformer
    from sentsim.inference.encode import encode

    return np.asarray(encode(SentenceTransformer(folder), sentences, dtype="fp32", batch_size=2))


def test_fp32_export_matches_torch(tiny_exported: Path) -> None:
    from sentsim.inference.onnx_backend import OnnxSentenceEncoder

    encoder = OnnxSentenceEncoder(tiny_exported, file_name="model.onnx")
    onnx_embeddings = encoder.encode(SENTENCES, batch_size=2)
    assert onnx_embeddings.shape == (len(SENTENCES), 32)
    assert np.max(np.abs(onnx_embeddings - _torch_fp32(tiny_exported, SENTENCES))) < 1e-4
    assert encoder.encode(SENTENCES[0]).shape == (32,)


@pytest.mark.parametrize(("pooling", "normalize"), [(["cls", "max"], True), ("weightedmean", False)])
def test_pooling_and_normalize_follow_the_folder(tiny_transformer_dir: Path, tmp_path: Path, pooling,
                                                 normalize: bool) -> None:
    from sentsim.export.onnx_export import export_model
    from sentsim.inference.onnx_backend import OnnxSentenceEncoder

    saved = _save_tiny(tiny_transformer_dir, tmp_path / "model", pooling=pooling, normalize=normalize)
    exported = export_model(saved, tmp_path / "exported")
    embeddings = OnnxSentenceEncoder(exported).encode(SENTENCES, batch_size=3)
    assert np.max(np.abs(embeddings - _torch_fp32(saved, SENTENCES))) < 1e-4
    norms = np.linalg.norm(embeddings, axis=1)
    assert np.allclose(norms, 1.0, atol=1e-5) == normalize


def test_export_writes_the_sentence_transformers_layout_and_variants(tiny_exported: Path) -> None:
    for name in ("modules.json", "config.json", "tokenizer.json", "sentence_bert_config.json",
                 "config_sentence_transformers.json", "1_Pooling/config.json", "onnx/model.onnx"):
        assert (tiny_exported / name).is_file(), name
    manifest = json.loads((tiny_exported / "onnx" / "sentsim_onnx.json").read_text())
    for name in manifest["variants"]:
        assert (tiny_exported / "onnx" / name).is_file()
    assert "model_qint8_avx512_vnni.onnx" in manifest["variants"]
    avx2 = manifest["variants"]["model_qint8_avx2.onnx"]
    # s8 weights in a saturation-free row order, or u8 where no such order exists (this tiny random model)
    assert (avx2["weights"] == "QInt8" and avx2["gemms_reordered"] >= 0) or avx2["weights"] == "QUInt8"


def test_the_cpu_picks_its_file_and_int8_stays_close(tiny_exported: Path) -> None:
    from sentsim.inference.onnx_backend import OnnxSentenceEncoder
    from sentsim.inference.onnx_files import find_onnx_file

    assert find_onnx_file(tiny_exported, isa="avx2").name == "model_qint8_avx2.onnx"
    assert find_onnx_file(tiny_exported, isa="avx512_vnni").name == "model_qint8_avx512_vnni.onnx"
    assert find_onnx_file(tiny_exported, isa="avx512").name == "model_qint8_avx2.onnx"
    assert find_onnx_file(tiny_exported, "fp32").name == "model.onnx"
    encoder = OnnxSentenceEncoder(tiny_exported)
    if onnx_isa() is not None:
        assert "qint8" in encoder.file.name and "int8" in encoder.describe()
    fp32 = OnnxSentenceEncoder(tiny_exported, file_name="model.onnx").encode(SENTENCES, normalize_embeddings=True)
    int8 = encoder.encode(SENTENCES, normalize_embeddings=True)
    assert np.min(np.sum(fp32 * int8, axis=1)) > 0.95


def test_int8_files_run_without_the_slow_skip_layer_norm_kernel(tiny_exported: Path, tmp_path: Path) -> None:
    """ORT's SkipLayerNormalization CPU kernel is several times slower than Add + LayerNormalization: the
    export must not fuse it and the encoder's session must not re-fuse it at load (README: 1.37× int8)."""
    import onnx

    from sentsim.inference.onnx_files import open_session

    for name in ("model_qint8_avx512_vnni.onnx", "model_qint8_avx2.onnx", "model_opt.onnx"):
        written = {node.op_type for node in onnx.load(str(tiny_exported / "onnx" / name)).graph.node}
        assert not written & {"SkipLayerNormalization", "BiasGelu"}, (name, written)
        assert "LayerNormalization" in written, name
        open_session(tiny_exported / "onnx" / name, save_optimized_to=tmp_path / f"loaded-{name}")
        loaded = {node.op_type for node in onnx.load(str(tmp_path / f"loaded-{name}")).graph.node}
        assert "SkipLayerNormalization" not in loaded and "LayerNormalization" in loaded, (name, loaded)


def test_a_folder_from_sentence_transformers_without_manifest(tiny_exported: Path, tmp_path: Path) -> None:
    import shutil

    from sentsim.inference.onnx_files import find_onnx_file

    folder = tmp_path / "st-layout"
    shutil.copytree(tiny_exported, folder)
    (folder / "onnx" / "sentsim_onnx.json").unlink()
    assert find_onnx_file(folder, isa="avx2").name == "model_qint8_avx2.onnx"
    assert find_onnx_file(folder, isa="generic").name == "model.onnx"  # a CPU without a matching file


def test_a_folder_without_onnx_files_names_the_export_command(tiny_saved: Path) -> None:
    from sentsim.inference.onnx_backend import OnnxSentenceEncoder

    with pytest.raises(ModelLoadError, match="sentsim export"):
        OnnxSentenceEncoder(tiny_saved)


def test_export_never_overwrites_without_the_flag(tiny_saved: Path, tmp_path: Path) -> None:
    from sentsim.export.onnx_export import export_model

    target = tmp_path / "existing"
    target.mkdir()
    (target / "keep.txt").write_text("mine")
    with pytest.raises(ConfigError, match="--overwrite"):
        export_model(tiny_saved, target)
    assert (target / "keep.txt").read_text() == "mine"
    with pytest.raises(ConfigError, match="is not a model folder"):  # a folder of other things: never
        export_model(tiny_saved, target, overwrite=True)
    import shutil

    shutil.copytree(tiny_saved, target, dirs_exist_ok=True)  # over a model: its files replaced, the rest kept
    export_model(tiny_saved, target, overwrite=True)
    assert (target / "onnx" / "model.onnx").is_file() and (target / "keep.txt").read_text() == "mine"
    with pytest.raises(ConfigError, match="quantize"):
        export_model(tiny_saved, tmp_path / "new", quantize="int4")


def test_sentence_transformer_backend_onnx_similarity_and_evaluation(tiny_exported: Path) -> None:
    from sentsim import SentenceTransformer
    from sentsim.data import PairDataset, ScoredPair
    from sentsim.evaluation.evaluate import evaluate_pairs
    from sentsim.inference.onnx_backend import OnnxSentenceEncoder

    encoder = SentenceTransformer(tiny_exported, backend="onnx", model_kwargs={"file_name": "model.onnx"})
    assert isinstance(encoder, OnnxSentenceEncoder) and encoder.file.name == "model.onnx"
    cosines = encoder.pair_cosine(SENTENCES[:2], SENTENCES[2:4])
    first, second = _torch_fp32(tiny_exported, SENTENCES[:2]), _torch_fp32(tiny_exported, SENTENCES[2:4])
    expected = np.sum(first * second, axis=1) / np.linalg.norm(first, axis=1) / np.linalg.norm(second, axis=1)
    assert np.allclose(cosines, expected, atol=1e-5)
    pairs = [ScoredPair(a, b, score) for a, b, score in
             [(SENTENCES[0], SENTENCES[1], 0.1), (SENTENCES[0], SENTENCES[0], 1.0), (SENTENCES[2], SENTENCES[3], 0.5)]]
    result = evaluate_pairs(encoder, PairDataset(pairs=pairs, source="tiny"))
    assert -100 <= result.spearman_cosine <= 100 and result.gold.size == 3
    with pytest.raises(ConfigError, match="torch backend"):
        SentenceTransformer(tiny_exported, backend="onnx", device="cuda")
    with pytest.raises(ConfigError, match="backend"):
        SentenceTransformer(tiny_exported, backend="tensorrt")


def test_missing_optional_dependency_names_the_extra() -> None:
    error = missing_dependency(ModuleNotFoundError("No module named 'torch'", name="torch"))
    assert isinstance(error, MissingDependencyError) and 'sentsim[torch]' in str(error)
    assert missing_dependency(ModuleNotFoundError("x", name="left_pad")) is None


def test_isa_from_cpu_flags() -> None:
    assert onnx_isa(frozenset({"avx2", "avx512f", "avx512_vnni"})) == "avx512_vnni"
    assert onnx_isa(frozenset({"avx2", "avx512f"})) == "avx512"
    assert onnx_isa(frozenset({"avx2", "fma"})) == "avx2"


def test_isa_follows_cpuid_where_numpy_reports_it_and_linux_flags_elsewhere(monkeypatch) -> None:
    """CPUID (what ONNX Runtime dispatches on) decides, also on Windows and macOS, which have no
    /proc/cpuinfo; Linux's flags are the fallback."""
    from sentsim import environment

    monkeypatch.setattr(environment, "cpu_flags", lambda: frozenset({"avx2", "avx512f", "avx512_vnni"}))
    for features, expected in (({"AVX2": True, "AVX512F": True, "AVX512VNNI": True}, "avx512_vnni"),
                               ({"AVX2": True, "AVX512F": True, "AVX512VNNI": False}, "avx512"),
                               ({"AVX2": True, "AVX512F": False, "AVX512VNNI": False}, "avx2")):
        monkeypatch.setattr(environment, "cpuid_features", lambda features=features: features)
        assert onnx_isa() == expected
    monkeypatch.setattr(environment, "cpuid_features", lambda: {})  # numpy without the table: Linux's flags
    assert onnx_isa() == "avx512_vnni"


# -- the real model -----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def minilm_int8(bundled_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from sentsim.export.onnx_export import export_model

    return export_model(bundled_model_dir, tmp_path_factory.mktemp("minilm-onnx") / "minilm", quantize="int8",
                        optimize=True)


@pytest.mark.integration
def test_minilm_fp32_onnx_matches_torch_on_100_test_sentences(minilm_int8: Path, stsb_dir: Path) -> None:
    from sentsim.data import read_stsbenchmark
    from sentsim.inference.onnx_backend import OnnxSentenceEncoder

    test = read_stsbenchmark(stsb_dir, "test")
    sentences = (test.sentences1 + test.sentences2)[:100]
    onnx_embeddings = OnnxSentenceEncoder(minilm_int8, file_name="model.onnx").encode(sentences)
    assert np.max(np.abs(onnx_embeddings - _torch_fp32(minilm_int8, sentences))) < 1e-4


@pytest.mark.integration
def test_minilm_int8_default_is_within_the_accuracy_budget(minilm_int8: Path, stsb_dir: Path) -> None:
    from sentsim.data import read_stsbenchmark
    from sentsim.evaluation.evaluate import evaluate_pairs
    from sentsim.inference.onnx_backend import OnnxSentenceEncoder

    encoder = OnnxSentenceEncoder(minilm_int8)
    result = evaluate_pairs(encoder, read_stsbenchmark(stsb_dir, "test"), batch_size=32)
    assert abs(result.spearman_cosine - 82.03) <= 0.3, (encoder.describe(), result.spearman_cosine)


CPUINFO_4_CORES = "".join(f"processor\t: {n}\nphysical id\t: 0\ncore id\t: {n // 2}\n\n" for n in range(8))


@pytest.mark.parametrize(("cpu_max", "expected"), [("max 100000\n", 4), ("200000 100000\n", 2), ("150000 100000", 2),
                                                    ("50000 100000", 1), (OSError, 4), ("garbage", 4)])
def test_physical_cores_count_cores_within_the_cgroup_quota(monkeypatch, cpu_max, expected) -> None:
    import sentsim.environment as environment

    def read_cpu_max() -> str:
        if cpu_max is OSError:
            raise OSError("no cgroup v2 here")
        return cpu_max

    monkeypatch.setattr(environment, "_read_cpuinfo", lambda: CPUINFO_4_CORES)
    monkeypatch.setattr(environment, "_read_cgroup_cpu_max", read_cpu_max)
    monkeypatch.setattr(environment.os, "sched_getaffinity", lambda _pid: set(range(8)), raising=False)
    assert environment.physical_cores() == expected


@pytest.mark.parametrize("file_name", [None, "model.onnx"])
def test_the_thread_count_never_changes_the_embeddings(tiny_exported: Path, file_name: str | None) -> None:
    """Batches run side by side, one core each, but each batch is the same batch: the same numbers."""
    from sentsim.inference.onnx_backend import OnnxSentenceEncoder

    texts = [f"{SENTENCES[index % len(SENTENCES)]} {'and ' * (index % 7)}the dog" for index in range(75)]
    one = OnnxSentenceEncoder(tiny_exported, file_name=file_name, threads=1)
    three = OnnxSentenceEncoder(tiny_exported, file_name=file_name, threads=3)
    for batch_size in (4, 32, 100):
        np.testing.assert_array_equal(one.encode(texts, batch_size=batch_size),
                                      three.encode(texts, batch_size=batch_size))
    tokens_one = one.encode(texts, batch_size=4, output_value="token_embeddings")
    tokens_three = three.encode(texts, batch_size=4, output_value="token_embeddings")
    assert all(np.array_equal(np.asarray(a), np.asarray(b)) for a, b in zip(tokens_one, tokens_three, strict=True))


def test_a_call_that_is_one_batch_opens_the_multi_threaded_session_only_then(tiny_exported: Path) -> None:
    from sentsim.inference.onnx_backend import OnnxSentenceEncoder

    encoder = OnnxSentenceEncoder(tiny_exported, threads=2)
    assert encoder.embedding_dimension == 32 and encoder._lone_session is None
    encoder.encode(SENTENCES * 3, batch_size=4)
    encoder.encode([])  # no batch at all: nothing to open a session for
    assert encoder._lone_session is None
    lone = encoder.encode(SENTENCES * 3, batch_size=32)
    assert encoder._lone_session is not None and encoder._lone_session is not encoder.session
    single = OnnxSentenceEncoder(tiny_exported, threads=1)
    assert single._lone() is single.session  # one thread: one session does both
    np.testing.assert_array_equal(lone, single.encode(SENTENCES * 3, batch_size=32))
    with pytest.raises(ConfigError, match="threads"):
        OnnxSentenceEncoder(tiny_exported, threads=-1)


def test_a_permuted_hidden_stream_computes_the_same_model(tiny_exported: Path, tmp_path: Path) -> None:
    """sentsim.export.stream_order: the hidden stream stored in another order (tables, layer norms, the
    GEMMs that read and write it, one Gather back at the end) gives the same embeddings."""
    import shutil

    import onnx

    from sentsim.export.stream_order import permute_hidden_stream
    from sentsim.inference.onnx_backend import OnnxSentenceEncoder

    folder = tmp_path / "permuted"
    shutil.copytree(tiny_exported, folder)
    hidden = OnnxSentenceEncoder(folder, file_name="model_opt.onnx").encode(SENTENCES[:1]).shape[1]
    order = np.random.default_rng(7).permutation(hidden)
    path = folder / "onnx" / "model_opt.onnx"
    model = onnx.load(str(path))
    assert permute_hidden_stream(model, order=order)
    onnx.save(model, str(path))
    before = OnnxSentenceEncoder(tiny_exported, file_name="model_opt.onnx").encode(SENTENCES)
    after = OnnxSentenceEncoder(folder, file_name="model_opt.onnx").encode(SENTENCES)
    np.testing.assert_allclose(after, before, atol=1e-5)
    # A graph the rules do not know (here the unfused export) is left as it was.
    unfused = onnx.load(str(folder / "onnx" / "model.onnx"))
    untouched = unfused.SerializeToString()
    assert not permute_hidden_stream(unfused, order=order)
    assert unfused.SerializeToString() == untouched


def test_permuted_value_features_within_each_head_compute_the_same_model(tiny_exported: Path,
                                                                         tmp_path: Path) -> None:
    """sentsim.export.head_order: each head's V columns and the output projection's rows in another order
    (within the head) give the same embeddings."""
    import shutil

    import onnx

    from sentsim.export.head_order import permute_attention_values
    from sentsim.inference.onnx_backend import OnnxSentenceEncoder

    folder = tmp_path / "heads"
    shutil.copytree(tiny_exported, folder)
    path = folder / "onnx" / "model_opt.onnx"
    attentions = [node for node in onnx.load(str(path)).graph.node if node.op_type == "Attention"]
    assert attentions
    rng = np.random.default_rng(3)
    orders = {}
    for node in attentions:
        heads = next(onnx.helper.get_attribute_value(a) for a in node.attribute if a.name == "num_heads")
        hidden = OnnxSentenceEncoder(folder, file_name="model_opt.onnx").encode(SENTENCES[:1]).shape[1]
        size = hidden // heads
        orders[node.name] = np.concatenate([head * size + rng.permutation(size) for head in range(heads)])
    model = onnx.load(str(path))
    assert permute_attention_values(model, orders=orders) == len(attentions)
    onnx.save(model, str(path))
    before = OnnxSentenceEncoder(tiny_exported, file_name="model_opt.onnx").encode(SENTENCES)
    after = OnnxSentenceEncoder(folder, file_name="model_opt.onnx").encode(SENTENCES)
    np.testing.assert_allclose(after, before, atol=1e-5)
