"""sentence-transformers' smaller model calls on both encoders: the dimension encode returns (truncate_dim
included), truncate_embeddings blocks, and its evaluators run through model.evaluate."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest
from scipy.stats import spearmanr

PAIRS = [("a man is playing a flute", "a man plays the flute", 4.6), ("a dog is running", "a cat sleeps", 0.8),
         ("the red car", "a red car", 4.2), ("two children play", "a woman is eating", 0.2),
         ("a plane is taking off", "an air plane is taking off", 5.0)]


@pytest.mark.parametrize("backend", ["torch", "onnx"])
def test_the_dimension_follows_truncate_dim_inside_and_after_the_block(encoders, backend: str) -> None:
    model = encoders[backend]
    full = model.get_embedding_dimension()
    assert full == model.get_sentence_embedding_dimension() == model.encode(["a"]).shape[1]
    for context in (model.truncate_embeddings, model.truncate_sentence_embeddings):
        with context(4):
            assert model.get_embedding_dimension() == 4 and model.encode(["a", "b"]).shape == (2, 4)
        assert model.get_embedding_dimension() == full and model.truncate_dim is None
    with model.truncate_embeddings(full + 100):  # larger than the model: the model's size
        assert model.get_embedding_dimension() == full
    with pytest.raises(ValueError, match="positive int"), model.truncate_embeddings(0):
        pass
    with pytest.raises(RuntimeError), model.truncate_embeddings(2):
        raise RuntimeError("an error inside the block")
    assert model.truncate_dim is None  # restored even so


@pytest.mark.parametrize("backend", ["torch", "onnx"])
def test_sentence_transformers_evaluators_run_through_evaluate(encoders, backend: str, tmp_path: Path) -> None:
    evaluation = pytest.importorskip("sentence_transformers.evaluation")
    model = encoders[backend]
    first, second, gold = (list(column) for column in zip(*PAIRS, strict=True))
    evaluator = evaluation.EmbeddingSimilarityEvaluator(first, second, gold, name="tiny")
    results = model.evaluate(evaluator, output_path=str(tmp_path / "out"))
    a, b = model.encode(first, normalize_embeddings=True), model.encode(second, normalize_embeddings=True)
    expected = spearmanr(np.sum(a * b, axis=1), gold).statistic
    assert results["tiny_spearman_cosine"] == pytest.approx(expected, abs=1e-6)
    assert (tmp_path / "out").is_dir()
    assert model.model_card_data.evaluations[-1]["metrics"] == results


def test_the_torch_model_exposes_its_transformers_model(encoders) -> None:
    import torch

    model = encoders["torch"]
    assert model.transformers_model is model.transformer.auto_model
    assert model.config.hidden_size == model.get_embedding_dimension() and model.dtype == torch.float32


class FakeHub:
    """Stands in for huggingface_hub.HfApi: records the calls and what the uploaded folder held."""

    calls: ClassVar[list[tuple[str, dict]]] = []

    def __init__(self, token=None) -> None:
        self.token = token

    def create_repo(self, **options):
        FakeHub.calls.append(("create_repo", options))
        return type("RepoUrl", (), {"repo_id": options["repo_id"] if "/" in options["repo_id"]
                                    else f"me/{options['repo_id']}"})()

    def create_branch(self, **options):
        FakeHub.calls.append(("create_branch", options))

    def upload_folder(self, **options):
        files = sorted(str(path.relative_to(options["folder_path"])) for path in Path(options["folder_path"]).rglob("*")
                       if path.is_file())
        FakeHub.calls.append(("upload_folder", {**options, "files": files}))
        return type("CommitInfo", (), {"commit_url": f"https://huggingface.co/{options['repo_id']}/commit/abc"})()


@pytest.mark.parametrize("backend", ["torch", "onnx"])
def test_push_to_hub_saves_then_uploads_the_folder(encoders, backend: str, monkeypatch) -> None:
    import huggingface_hub

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.delenv("SENTSIM_OFFLINE", raising=False)
    monkeypatch.setattr(huggingface_hub, "HfApi", FakeHub)
    FakeHub.calls = []
    url = encoders[backend].push_to_hub("tiny-sts", token="t", private=True, revision="v1", exist_ok=True)
    assert url == "https://huggingface.co/me/tiny-sts/commit/abc"
    assert [name for name, _ in FakeHub.calls] == ["create_repo", "create_branch", "upload_folder"]
    assert FakeHub.calls[0][1]["private"] is True and FakeHub.calls[0][1]["exist_ok"] is True
    upload = FakeHub.calls[2][1]
    assert upload["repo_id"] == "me/tiny-sts" and upload["revision"] == "v1"
    assert "modules.json" in upload["files"] and "config.json" in upload["files"]
    assert not Path(upload["folder_path"]).exists()  # the temporary save is gone afterwards


def test_push_to_hub_offline_says_which_variable_and_sends_nothing(encoders, monkeypatch) -> None:
    import huggingface_hub

    from sentsim.errors import OfflineError

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub, "HfApi", FakeHub)
    FakeHub.calls = []
    with pytest.raises(OfflineError, match="HF_HUB_OFFLINE"):
        encoders["torch"].push_to_hub("tiny-sts")
    assert FakeHub.calls == []
    with pytest.raises(ValueError, match="safetensors"):
        encoders["onnx"].push_to_hub("tiny-sts", safe_serialization=False)


def test_constructor_takes_sentence_transformers_loading_options(tiny_transformer_dir: Path, tmp_path: Path,
                                                                   monkeypatch) -> None:
    import huggingface_hub
    import torch

    from sentsim import SentenceTransformer
    from sentsim.errors import ConfigError

    folder = SentenceTransformer.from_transformer(tiny_transformer_dir).save(tmp_path / "model")
    model = SentenceTransformer(folder, cache_folder="/nowhere", revision="main", token=None, local_files_only=True,
                                trust_remote_code=False, model_kwargs={"torch_dtype": "auto"}, model_card_data=None)
    assert model.embedding_dimension > 0
    for harmless in ({"attn_implementation": "eager"}, {"low_cpu_mem_usage": False}):  # same weights, same math
        assert SentenceTransformer(folder, model_kwargs=harmless).embedding_dimension == model.embedding_dimension
    for options, named in (({"trust_remote_code": True}, "trust_remote_code"),
                           ({"model_kwargs": {"torch_dtype": torch.float16}}, "torch_dtype"),
                           ({"model_kwargs": {"attn_implementation": "flash_attention_2"}}, "attn_implementation"),
                           ({"tokenizer_kwargs": {"model_max_length": 8}}, "tokenizer_kwargs['model_max_length']"),
                           ({"config_kwargs": {"hidden_dropout_prob": 0.0}}, "config_kwargs")):
        with pytest.raises(ConfigError, match=named.replace("[", r"\[").replace("]", r"\]")):
            SentenceTransformer(folder, **options)
    calls = []

    def snapshot_download(repo_id, **options):
        calls.append((repo_id, options))
        return str(folder)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", snapshot_download)
    for backend in ("torch", "onnx"):
        calls.clear()
        SentenceTransformer("someone/some-model", backend=backend, cache_folder="/cache", revision="v1",
                            use_auth_token="hf_x", local_files_only=True)
        assert calls[0] == ("someone/some-model", {"cache_dir": "/cache", "revision": "v1", "token": "hf_x",
                                                   "local_files_only": True})
