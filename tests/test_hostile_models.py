"""Damaged, hostile and out-of-range model folders: each is refused with one ModelLoadError naming the file."""

from __future__ import annotations

import json
import os
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest

from sentsim.errors import ConfigError, ModelLoadError

LONG_TEXT = " ".join(["a man is playing a flute in the park"] * 60)  # ~480 words, far over 64 tokens


@pytest.fixture(scope="module")
def saved_model(tiny_transformer_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny BERT (64 positions) with mean pooling, saved as a sentsim model folder; never modified."""
    from sentsim import SentenceTransformer

    folder = tmp_path_factory.mktemp("hostile") / "model"
    SentenceTransformer.from_transformer(tiny_transformer_dir, pooling="mean").save(folder)
    return folder


@pytest.fixture
def model_copy(saved_model: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(saved_model, tmp_path / "model"))


def _load(folder: Path, **options):
    from sentsim import SentenceTransformer

    return SentenceTransformer(str(folder), **options)


def _refused(folder: Path, *fragments: str, **options) -> str:
    with pytest.raises(ModelLoadError) as caught:
        _load(folder, **options)
    message = str(caught.value)
    assert "\n" not in message, message
    for fragment in fragments:
        assert fragment in message, message
    return message


# -- defect 5: max_seq_length --------------------------------------------------------------------------
@pytest.mark.parametrize("value", [0, 1, 65, 100_000, -5, "abc", "128", 2.5, True, [128]])
def test_max_seq_length_out_of_range_in_the_folder_is_refused(model_copy: Path, value):
    config = model_copy / "sentence_bert_config.json"
    config.write_text(json.dumps({"max_seq_length": value, "do_lower_case": False}))
    _refused(model_copy, str(config), "max_seq_length", "from 2 to 64", repr(value))


@pytest.mark.parametrize("value", [2, 64, 64.0])
def test_max_seq_length_in_range_loads(model_copy: Path, value):
    (model_copy / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": value}))
    model = _load(model_copy)
    assert model.max_seq_length == int(value) and isinstance(model.max_seq_length, int)


@pytest.mark.parametrize("content", ["[1, 2]", '"x"', '{"do_lower_case": "yes"}', "{not json"])
def test_malformed_module_config_is_refused(model_copy: Path, content: str):
    config = model_copy / "sentence_bert_config.json"
    config.write_text(content)
    _refused(model_copy, str(config))


def test_max_seq_length_setter_checks_the_range(tiny_model):
    for value in (1, 65, 100_000, "abc", None):
        with pytest.raises(ConfigError, match="from 2 to 64"):
            tiny_model.max_seq_length = value
    tiny_model.max_seq_length = 64
    assert tiny_model.max_seq_length == tiny_model.transformer.max_seq_length == 64


def test_from_transformer_refuses_a_too_long_max_seq_length(tiny_transformer_dir: Path):
    from sentsim import SentenceTransformer

    with pytest.raises(ConfigError, match="got 100000"):
        SentenceTransformer.from_transformer(tiny_transformer_dir, max_seq_length=100_000)


def test_inputs_longer_than_the_positions_are_truncated_not_a_crash(tiny_model):
    assert len(tiny_model.transformer.tokenizer(LONG_TEXT)["input_ids"]) > 64
    assert all(len(ids) == 64 for ids in tiny_model.transformer.tokenize([LONG_TEXT, LONG_TEXT + " dog"]))
    embeddings = tiny_model.encode([LONG_TEXT, "a dog"], batch_size=2)
    assert embeddings.shape == (2, 32) and np.isfinite(embeddings).all()


def test_position_limit_knows_the_padding_offset_of_roberta_models():
    from transformers import BertConfig, RobertaConfig

    from sentsim.models.transformer import position_limit

    assert position_limit(BertConfig(max_position_embeddings=512)) == 512
    assert position_limit(RobertaConfig(max_position_embeddings=514, pad_token_id=1)) == 512


# -- defect 7: damaged weights and modules.json -----------------------------------------------------------
@pytest.mark.parametrize("keep", [0, 7, 1000, -100])
def test_truncated_or_empty_safetensors_is_refused(model_copy: Path, keep: int):
    weights = model_copy / "model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(data[:keep])  # a negative keep cuts the tail: header intact, tensors short
    _refused(model_copy, str(weights), "safetensors", "truncated")


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        ('{"0": {"type": "sentence_transformers.models.Transformer", "path": ""}}', "found a JSON object"),
        ('["Transformer", "Pooling"]', "entry 0 is 'Transformer'"),
        ("[]", "found an empty list"),
        ('[{"idx": 0, "path": ""}]', "entry 0's 'type' is missing"),
        ('[{"idx": 0, "type": "sentence_transformers.models.Transformer"}]', "entry 0's 'path' is missing"),
        ('[{"idx": "0", "type": "sentence_transformers.models.Transformer", "path": ""}]', "'idx' is '0'"),
        ('[{"type": "sentence_transformers.models.Transformer", "path": "../elsewhere"}]', "leaves the model folder"),
        ('[{"type": "sentence_transformers.models.Transformer", "path": 3}]', "'path' is 3, not a string"),
        ("[{", "not valid JSON"),
    ],
)
def test_malformed_modules_json_is_refused(model_copy: Path, content: str, reason: str):
    (model_copy / "modules.json").write_text(content)
    _refused(model_copy, str(model_copy / "modules.json"), reason)


# -- defect 8 and 7: pickle weights ----------------------------------------------------------------------
def _pickle_only(folder: Path) -> Path:
    import torch
    from safetensors.torch import load_file

    weights = folder / "model.safetensors"
    torch.save(load_file(weights), folder / "pytorch_model.bin")
    weights.unlink()
    return folder / "pytorch_model.bin"


def test_pickle_only_weights_are_refused_unless_allowed(saved_model: Path, model_copy: Path):
    pickle_file = _pickle_only(model_copy)
    message = _refused(model_copy, str(pickle_file), "pickle", "can run code", "--allow-pickle", "allow_pickle=True")
    assert "safetensors" in message
    allowed = _load(model_copy, allow_pickle=True)
    expected = _load(saved_model).encode(["a dog is running"])
    np.testing.assert_allclose(allowed.encode(["a dog is running"]), expected, rtol=1e-5, atol=1e-6)


def test_from_transformer_refuses_pickle_unless_allowed(saved_model: Path, model_copy: Path):
    from sentsim import SentenceTransformer

    _pickle_only(model_copy)
    with pytest.raises(ModelLoadError, match="--allow-pickle"):
        SentenceTransformer.from_transformer(model_copy)
    assert SentenceTransformer.from_transformer(model_copy, allow_pickle=True).embedding_dimension == 32


class _Payload:
    """Unpickling this runs ``touch MARKER`` through os.system: what a hostile weights file does."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_malicious_pickle_is_refused_even_when_pickle_is_allowed(model_copy: Path, tmp_path: Path):
    import torch

    marker = tmp_path / "payload-ran"
    (model_copy / "model.safetensors").unlink()
    pickle_file = model_copy / "pytorch_model.bin"
    torch.save({"embeddings.word_embeddings.weight": _Payload(marker)}, pickle_file)
    _refused(model_copy, str(pickle_file), "pickle")  # refused as pickle before anything is read
    message = _refused(model_copy, str(pickle_file), "refused to unpickle", "system", allow_pickle=True)
    assert "do not use it" in message
    assert not marker.exists(), "the payload ran"


def test_plain_pickle_payload_is_refused_in_one_line(model_copy: Path, tmp_path: Path):
    marker = tmp_path / "payload-ran"
    (model_copy / "model.safetensors").unlink()
    with open(model_copy / "pytorch_model.bin", "wb") as handle:
        pickle.dump(_Payload(marker), handle)
    _refused(model_copy, str(model_copy / "pytorch_model.bin"), "refused to unpickle", allow_pickle=True)
    assert not marker.exists()


# -- the CLI surfaces these as one-line exit-2 errors -------------------------------------------------------
def test_cli_damaged_model_is_exit_2_in_one_line(capsys, model_copy: Path, tmp_path: Path):
    from sentsim.cli import main

    (model_copy / "model.safetensors").write_bytes(b"")
    sentences = tmp_path / "in.txt"
    sentences.write_text("a dog\n", encoding="utf-8")
    code = main(["encode", str(model_copy), str(sentences), "-o", str(tmp_path / "out.npy"), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and "model.safetensors" in err and "Traceback" not in err
    assert not (tmp_path / "out.npy").exists()


def test_cli_train_refuses_a_too_long_max_seq_length_before_training(capsys, saved_model: Path, tmp_path: Path):
    from sentsim.cli import main

    from .conftest import TRAIN_PAIRS

    data = tmp_path / "train.tsv"
    data.write_text("sentence1\tsentence2\tscore\n" + "".join(f"{a}\t{b}\t{s * 5:g}\n" for a, b, s in TRAIN_PAIRS))
    output = tmp_path / "run"
    code = main(["train", "--base-model", str(saved_model), "--data", str(data), "--dev-data", str(data),
                 "--max-seq-length", "100000", "--output", str(output), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2, err
    assert "max_seq_length" in err and "100000" in err and "Traceback" not in err
    assert not output.exists() and not list(tmp_path.glob(".run*"))
