"""The model pipeline: pooling modes, encode behaviour, save/load round trips."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from sentsim import SentenceTransformer
from sentsim.errors import ConfigError, ModelLoadError
from sentsim.models import Normalize, Pooling

SENTENCES = [
    "a man is playing a flute",
    "a dog",
    "two children are playing ball in the park with a red ball",
    "a cat is eating food",
    "the plane is taking off",
]


def _features(lengths: list[int], dim: int = 4) -> dict[str, torch.Tensor]:
    torch.manual_seed(1)
    longest = max(lengths)
    mask = torch.zeros(len(lengths), longest, dtype=torch.long)
    for row, length in enumerate(lengths):
        mask[row, :length] = 1
    return {"token_embeddings": torch.randn(len(lengths), longest, dim), "attention_mask": mask}


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        ("mean", lambda t, n: t[:n].mean(0)),
        ("cls", lambda t, n: t[0]),
        ("max", lambda t, n: t[:n].max(0).values),
        ("mean_sqrt_len", lambda t, n: t[:n].sum(0) / n**0.5),
        ("lasttoken", lambda t, n: t[n - 1]),
        ("weightedmean", lambda t, n: (t[:n] * torch.arange(1, n + 1).view(-1, 1)).sum(0) / sum(range(1, n + 1))),
    ],
)
def test_pooling_modes_ignore_padding(mode, expected):
    features = _features([3, 5])
    pooled = Pooling(4, modes=mode)(dict(features))["sentence_embedding"]
    for row, length in enumerate([3, 5]):
        torch.testing.assert_close(pooled[row], expected(features["token_embeddings"][row], length))


def test_pooling_accepts_spellings_and_concatenates_in_st_order():
    pooling = Pooling(4, modes=["mean", "cls"])
    assert pooling.modes == ("cls", "mean") and pooling.output_dimension == 8
    assert Pooling(4, modes="mean-sqrt-len").modes == ("mean_sqrt_len",)
    with pytest.raises(ModelLoadError, match="unknown pooling mode"):
        Pooling(4, modes="median")


def test_pooling_config_round_trip_uses_legacy_keys(tmp_path: Path):
    Pooling(4, modes="max").save(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["pooling_mode_max_tokens"] is True and config["pooling_mode_mean_tokens"] is False
    assert config["word_embedding_dimension"] == 4
    assert Pooling.load(tmp_path).modes == ("max",)
    # The newer sentence-transformers form loads too.
    assert Pooling.from_config({"embedding_dimension": 4, "pooling_mode": "cls"}).modes == ("cls",)


def test_normalize_gives_unit_vectors():
    features = {"sentence_embedding": torch.randn(3, 5)}
    norms = Normalize()(features)["sentence_embedding"].norm(dim=1)
    torch.testing.assert_close(norms, torch.ones(3))


def test_encode_keeps_order_and_matches_single_sentences(tiny_model):
    batched = tiny_model.encode(SENTENCES, batch_size=2, dtype="fp32")
    assert batched.shape == (len(SENTENCES), 32) and batched.dtype == np.float32
    for index, sentence in enumerate(SENTENCES):
        alone = tiny_model.encode(sentence, dtype="fp32")
        np.testing.assert_allclose(batched[index], alone, atol=1e-5)


def test_encode_options(tiny_model):
    as_tensor = tiny_model.encode(SENTENCES, convert_to_tensor=True, normalize_embeddings=True, dtype="fp32")
    assert isinstance(as_tensor, torch.Tensor)
    torch.testing.assert_close(as_tensor.norm(dim=1), torch.ones(len(SENTENCES)))
    assert tiny_model.encode([], dtype="fp32").shape == (0,)  # as sentence-transformers returns it
    with pytest.raises(ValueError):
        tiny_model.encode(SENTENCES, batch_size=0)
    with pytest.raises(ConfigError):
        tiny_model.encode(SENTENCES, dtype="fp8")


def test_encode_leaves_no_gradients_and_restores_mode(tiny_model):
    tiny_model.train()
    tiny_model.encode(SENTENCES, dtype="fp32")
    assert tiny_model.training
    assert all(parameter.grad is None for parameter in tiny_model.parameters())


def test_numpy_batch_sizes_and_an_empty_tokenize_as_sentence_transformers(tiny_model):
    expected = tiny_model.encode(SENTENCES, batch_size=2, dtype="fp32")
    np.testing.assert_array_equal(tiny_model.encode(SENTENCES, batch_size=np.int64(2), dtype="fp32"), expected)
    assert tiny_model.tokenize([]) == {}


def test_encode_restores_each_modules_own_mode(tiny_model):
    """A loaded model can say "training" outside with its transformer in eval: encode must not turn dropout on."""
    tiny_model.train()
    tiny_model.transformer.eval()
    modes = [module.training for module in tiny_model.modules()]
    tiny_model.encode(SENTENCES, dtype="fp32")
    assert [module.training for module in tiny_model.modules()] == modes
    features = tiny_model.tokenize(SENTENCES)
    with torch.no_grad():  # dropout still off inside: two direct forwards agree
        first = tiny_model(dict(features))["sentence_embedding"]
        second = tiny_model(dict(features))["sentence_embedding"]
    assert torch.equal(first, second)


def test_bf16_encode_is_close_to_fp32(tiny_model):
    exact = tiny_model.encode(SENTENCES, dtype="fp32", normalize_embeddings=True)
    fast = tiny_model.encode(SENTENCES, dtype="bf16", normalize_embeddings=True)
    assert np.abs(exact - fast).max() < 0.05


def test_save_load_round_trip(tiny_model, tmp_path: Path):
    tiny_model.max_seq_length = 48
    folder = tiny_model.save(tmp_path / "model")
    modules = json.loads((folder / "modules.json").read_text())
    assert [entry["type"] for entry in modules] == [
        "sentence_transformers.models.Transformer",
        "sentence_transformers.models.Pooling",
    ]
    assert json.loads((folder / "sentence_bert_config.json").read_text())["max_seq_length"] == 48
    assert json.loads((folder / "tokenizer_config.json").read_text())["model_max_length"] == 48
    assert (folder / "model.safetensors").is_file()
    # Readable by others like any file the user writes (safetensors alone would leave 0600).
    assert all(path.stat().st_mode & 0o044 == 0o044 for path in folder.rglob("*") if path.is_file())
    assert (folder / "config_sentence_transformers.json").is_file()
    loaded = SentenceTransformer(folder)
    assert loaded.max_seq_length == 48
    np.testing.assert_allclose(
        loaded.encode(SENTENCES, dtype="fp32"), tiny_model.encode(SENTENCES, dtype="fp32"), atol=1e-6
    )


def test_missing_normalize_folder_is_tolerated(tiny_transformer_dir, tmp_path: Path):
    model = SentenceTransformer.from_transformer(tiny_transformer_dir, pooling="mean", normalize=True)
    folder = model.save(tmp_path / "model")
    (folder / "2_Normalize").rmdir()
    loaded = SentenceTransformer(folder)
    assert isinstance(loaded[-1], Normalize)


def test_plain_transformer_folder_gets_mean_pooling(tiny_transformer_dir):
    model = SentenceTransformer(tiny_transformer_dir)
    assert model.pooling is not None and model.pooling.modes == ("mean",)


def test_failed_save_keeps_previous_model(tiny_model, tmp_path: Path, monkeypatch):
    folder = tiny_model.save(tmp_path / "model")
    before = sorted(path.name for path in folder.iterdir())

    def broken_save(self, path):
        raise RuntimeError("disk full")

    monkeypatch.setattr(Pooling, "save", broken_save)
    with pytest.raises(RuntimeError):
        tiny_model.save(folder)
    assert sorted(path.name for path in folder.iterdir()) == before
    assert [path.name for path in tmp_path.iterdir()] == ["model"]


def test_save_into_a_folder_keeps_what_else_is_there(tiny_model, tmp_path: Path):
    """As sentence-transformers' save: the model's files are written (replaced), the user's stay."""
    folder = tmp_path / "project"
    (folder / "eval").mkdir(parents=True)
    (folder / "notes.txt").write_text("mine")
    (folder / "eval" / "results.csv").write_text("epoch,score\n")
    tiny_model.save(folder)
    first = (folder / "model.safetensors").read_bytes()
    with torch.no_grad():
        next(tiny_model.parameters()).add_(1.0)
    tiny_model.save(folder)  # again: the model's own files are replaced
    assert (folder / "notes.txt").read_text() == "mine"
    assert (folder / "eval" / "results.csv").read_text() == "epoch,score\n"
    assert (folder / "model.safetensors").read_bytes() != first
    reloaded = SentenceTransformer(folder)
    assert torch.equal(next(reloaded.parameters()), next(tiny_model.parameters()))
    assert not [path.name for path in tmp_path.iterdir() if path.name != "project"]  # no temporaries left
    assert not [path.name for path in folder.iterdir() if path.name.startswith(".")]
    (tmp_path / "a-file").write_text("not a folder")
    with pytest.raises(FileExistsError, match="not a folder"):
        tiny_model.save(tmp_path / "a-file")
    assert (tmp_path / "a-file").read_text() == "not a folder"
    # What belonged to the model there before (an ONNX export, a calibration of the old weights) goes: it
    # would be used with the new weights. The user's files stay.
    (folder / "onnx").mkdir()
    (folder / "onnx" / "model.onnx").write_bytes(b"old export")
    (folder / "calibration.json").write_text("{}")
    (folder / "2_Normalize").mkdir()
    tiny_model.save(folder)
    assert not (folder / "onnx").exists() and not (folder / "calibration.json").exists()
    assert not (folder / "2_Normalize").exists() and (folder / "notes.txt").read_text() == "mine"
    bare = tiny_model.save_pretrained(tmp_path / "bare", create_model_card=False, safe_serialization=True)
    assert not (bare / "README.md").exists() and (bare / "modules.json").is_file()


def test_pooling_mode_names_of_every_sentence_transformers_version():
    for name, mode in (("mean_sqrt_len_tokens", "mean_sqrt_len"), ("mean_tokens", "mean"), ("cls_token", "cls"),
                       ("max_tokens", "max"), ("weightedmean_tokens", "weightedmean"), ("lasttoken", "lasttoken")):
        assert Pooling.from_config({"embedding_dimension": 8, "pooling_mode": name}).modes == (mode,)


def test_unknown_model_errors(tmp_path: Path, monkeypatch):
    with pytest.raises(ModelLoadError):
        SentenceTransformer(tmp_path / "missing" / "folder")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelLoadError, match=r"neither modules\.json"):
        SentenceTransformer(tmp_path / "empty")


def test_hub_name_offline_names_the_way_out(monkeypatch):
    from sentsim.errors import OfflineError

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(OfflineError, match=r"local model folder"):
        SentenceTransformer("someone/not-cached-model-xyz")


def test_pair_cosine_and_sts_score(tiny_model):
    cosine = tiny_model.pair_cosine("a dog", "a cat")
    assert isinstance(cosine, float) and -1.0 <= cosine <= 1.0
    with pytest.raises(ConfigError, match="calibrate"):
        tiny_model.sts_score("a dog", "a cat")


def test_collate_pads_each_row_and_masks_only_its_tokens(tiny_model):
    ids = [[101, 7, 8, 9, 102], [101, 102], [101, 5, 6, 102]]
    features = tiny_model.collate(ids, pad_to_multiple_of=4)
    pad = tiny_model.transformer.tokenizer.pad_token_id or 0
    assert features["input_ids"].dtype == features["attention_mask"].dtype == torch.long
    assert features["input_ids"].tolist() == [row + [pad] * (8 - len(row)) for row in ids]
    assert features["attention_mask"].tolist() == [[1] * len(row) + [0] * (8 - len(row)) for row in ids]
    assert tiny_model.collate(ids)["input_ids"].shape == (3, 5)
