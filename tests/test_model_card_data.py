"""What a saved model's card says: the user's model_card_data (sentence-transformers' or a mapping), the
figures of evaluators run on the model, the card a model was loaded with (kept until it is trained), its
0–5 section after a new calibration, and the hub id push_to_hub gives it."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from .cli_support import run_cli
from .test_st_calls import PAIRS, FakeHub


def _front_matter(card: str) -> dict:
    assert card.startswith("---\n")
    return yaml.safe_load(card.split("---\n")[1])


@pytest.fixture(scope="module")
def saved(tiny_transformer_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from sentsim import SentenceTransformer

    return SentenceTransformer.from_transformer(tiny_transformer_dir, pooling="mean").save(
        tmp_path_factory.mktemp("card-data") / "model")


def test_their_model_card_data_goes_into_the_saved_card(saved: Path, tmp_path: Path) -> None:
    st = pytest.importorskip("sentence_transformers")
    from sentsim import SentenceTransformer

    data = st.SentenceTransformerModelCardData(
        language=["en", "de"], license="apache-2.0", model_name="Tiny STS: a test", model_id="me/tiny-sts",
        train_datasets=[{"name": "STSB", "id": "sentence-transformers/stsb"}], eval_datasets=[{"name": "SICK"}],
        tags=["sts", "sentence-transformers"], local_files_only=True)  # offline: their check drops hub ids
    model = SentenceTransformer(saved, model_card_data=data)
    assert model.model_card_data.license == "apache-2.0" and model.model_card_data.language == ["en", "de"]
    card = (model.save(tmp_path / "out") / "README.md").read_text(encoding="utf-8")
    front = _front_matter(card)
    assert front["language"] == ["en", "de"] and front["license"] == "apache-2.0"
    assert front["datasets"] == ["sentence-transformers/stsb"]
    assert front["tags"] == ["sentence-transformers", "sentence-similarity", "sentsim", "sts"]  # each once
    assert "# Tiny STS: a test" in card and 'SentenceTransformer("me/tiny-sts")' in card
    assert "## Training data" in card and "[sentence-transformers/stsb](https://huggingface.co/datasets/" in card
    assert "## Evaluation data" in card and "- SICK" in card
    # and their library reads the folder back, card included
    assert st.SentenceTransformer(str(tmp_path / "out"), device="cpu").get_embedding_dimension() > 0


def test_a_mapping_works_and_wrong_card_data_is_refused(saved: Path, tmp_path: Path) -> None:
    from sentsim import SentenceTransformer
    from sentsim.errors import ConfigError

    model = SentenceTransformer(saved, model_card_data={"license": "mit", "language": "fr"})
    front = _front_matter((model.save(tmp_path / "out") / "README.md").read_text(encoding="utf-8"))
    assert front["license"] == "mit" and front["language"] == ["fr"] and "datasets" not in front
    with pytest.raises(ConfigError, match="no field 'licence'"):
        SentenceTransformer(saved, model_card_data={"licence": "mit"})
    with pytest.raises(ConfigError, match="model_card_data must be"):
        SentenceTransformer(saved, model_card_data=42)
    with pytest.raises(ConfigError, match="train_datasets entries"):
        SentenceTransformer(saved, model_card_data={"train_datasets": [{"url": "x"}]})
    with pytest.raises(ConfigError, match="language"):
        SentenceTransformer(saved, model_card_data={"language": ["en", ""]})


@pytest.mark.parametrize("backend", ["torch", "onnx"])
def test_the_encoders_keep_card_data(saved: Path, backend: str) -> None:
    from sentsim import SentenceTransformer

    model = SentenceTransformer(saved, backend=backend, model_card_data={"license": "mit"})
    assert model.model_card_data.license == "mit"


def test_evaluator_figures_go_into_the_card(saved: Path, tmp_path: Path) -> None:
    evaluation = pytest.importorskip("sentence_transformers.evaluation")
    from sentsim import SentenceTransformer

    model = SentenceTransformer(saved)
    first, second, gold = (list(column) for column in zip(*PAIRS, strict=True))
    results = model.evaluate(evaluation.EmbeddingSimilarityEvaluator(first, second, gold, name="tiny"))
    card = (model.save(tmp_path / "out") / "README.md").read_text(encoding="utf-8")
    assert "## Evaluation" in card and "EmbeddingSimilarityEvaluator (tiny)" in card
    assert f"| tiny_spearman_cosine | {results['tiny_spearman_cosine']:.4f} |" in card
    assert "No training run or evaluation is recorded" not in card


def test_a_loaded_card_is_kept_until_the_model_is_trained(saved: Path, tmp_path: Path) -> None:
    from sentsim import SentenceTransformer

    mine = saved.parent / "with-card"
    shutil.copytree(saved, mine)
    (mine / "README.md").write_text("---\nlicense: mit\n---\n\n# My model\n\nHand written, with care.\n\n"
                                    "```python\nmodel = SentenceTransformer('sentence_transformers_model_id')\n```\n",
                                    encoding="utf-8")
    model = SentenceTransformer(mine)
    kept = (model.save(tmp_path / "copy", model_name="me/mine") / "README.md").read_text(encoding="utf-8")
    assert kept.startswith("---\nlicense: mit\n---\n\n# My model\n\nHand written, with care.")
    assert 'SentenceTransformer("me/mine")' in kept  # their placeholder id now names the model
    assert "## 0–5 scores" not in kept  # no calibration: nothing added to a card sentsim did not write
    model.train()  # training starts: the old card no longer describes the weights
    model.eval()
    fresh = (model.save(tmp_path / "trained") / "README.md").read_text(encoding="utf-8")
    assert "Hand written" not in fresh and "## Usage" in fresh and 'SentenceTransformer("me/mine")' in fresh


def test_a_trained_runs_card_survives_a_save_and_follows_a_new_calibration(trained_run, data_dir: Path,
                                                                            tmp_path: Path, capsys) -> None:
    from sentsim import SentenceTransformer

    _, _, run = trained_run
    original = (run / "model" / "README.md").read_text(encoding="utf-8")
    assert "fitted on the dev split" in original
    copy = SentenceTransformer(run / "model").save(tmp_path / "copy")
    card = (copy / "README.md").read_text(encoding="utf-8")
    # everything but the 0–5 section is the training card, word for word
    assert card.split("## 0–5 scores")[0] == original.split("## 0–5 scores")[0]
    assert card.split("## Limitations")[1] == original.split("## Limitations")[1]
    assert "fitted on 10 pairs of " in card
    named = (SentenceTransformer(run / "model").save(tmp_path / "named", model_name="me/sts-model") / "README.md")
    named_card = named.read_text(encoding="utf-8")  # the training card's local path becomes the hub id
    assert 'SentenceTransformer("me/sts-model")' in named_card and "path/to/this/model" not in named_card
    assert 'SentenceTransformer("path/to/this/model")' in original
    code, _, err = run_cli(capsys, "calibrate", copy, "--data", data_dir / "test.tsv", "--overwrite", "--quiet")
    assert code == 0, err
    recalibrated = (copy / "README.md").read_text(encoding="utf-8")
    assert "test.tsv" in recalibrated and "fitted on the dev split" not in recalibrated
    assert recalibrated.count("## 0–5 scores") == 1 and "## Limitations" in recalibrated


@pytest.fixture
def pushed_cards(monkeypatch) -> list[str]:
    """A fake hub (online); the list gets the README.md of every folder uploaded to it."""
    import huggingface_hub

    for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "SENTSIM_OFFLINE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(huggingface_hub, "HfApi", FakeHub)
    cards: list[str] = []
    original_upload = FakeHub.upload_folder

    def upload(self, **options):
        cards.append((Path(options["folder_path"]) / "README.md").read_text(encoding="utf-8"))
        return original_upload(self, **options)

    monkeypatch.setattr(FakeHub, "upload_folder", upload)
    FakeHub.calls = []
    return cards


@pytest.mark.parametrize("backend", ["torch", "onnx"])
def test_both_encoders_push_cards_that_load_the_full_id(encoders, backend: str, pushed_cards: list[str]) -> None:
    encoders[backend].push_to_hub(f"tiny-{backend}")
    assert f'SentenceTransformer("me/tiny-{backend}")' in pushed_cards[-1]
    assert "sentence_transformers_model_id" not in pushed_cards[-1]


def test_push_to_hub_cards_load_the_repositorys_full_id(saved: Path, pushed_cards: list[str]) -> None:
    from sentsim import SentenceTransformer

    model = SentenceTransformer(saved)
    model.push_to_hub("tiny-sts")  # a bare name: the hub puts it under the user's namespace
    assert 'SentenceTransformer("me/tiny-sts")' in pushed_cards[-1] and model.model_card_data.model_id == "me/tiny-sts"
    with pytest.warns(DeprecationWarning, match="push_to_hub"):
        model.save_to_hub("other", organization="org", exist_ok=True)
    assert FakeHub.calls[-1][1]["repo_id"] == "org/other" and 'SentenceTransformer("org/other")' in pushed_cards[-1]
    with pytest.raises(ValueError, match="organization"), pytest.warns(DeprecationWarning):
        model.save_to_hub("someone/other", organization="org")


def test_restating_the_calibration_section() -> None:
    from sentsim.persistence.card_text import restate_calibration

    card = ("# M\n\n## 0–5 scores\n\nNo `calibration.json` here.\n\n```md\n## not a heading\n```\n\n"
            "## Limitations\n\nSome.\n")
    new = restate_calibration(card, source="sick dev", n_pairs=1500)
    assert new.startswith("# M\n\n## 0–5 scores (calibration.json)\n\n") and "1,500 pairs of sick dev" in new
    assert new.endswith("\n## Limitations\n\nSome.\n") and "## not a heading" not in new  # fenced: inside the section
    assert restate_calibration(new, source=None, n_pairs=None).count("has no `calibration.json`") == 1
    plain = "# Theirs\n\nText.\n"
    assert restate_calibration(plain, source=None, n_pairs=None) == plain
    assert restate_calibration(plain, source="x", n_pairs=3, append=False) == plain
    assert restate_calibration(plain, source="x", n_pairs=3).endswith("fitted on 3 pairs of x. sentence-transformers "
                                                                       "ignores it; sentsim applies it: "
                                                                       "`model.sts_score(a, b)` in Python, `sentsim "
                                                                       "similarity MODEL \"text a\" \"text b\"` on the "
                                                                       "command line.\n")


def test_sentsims_own_card_data_class_under_their_name(saved: Path, tmp_path: Path, bundled_model_dir: Path) -> None:
    from sentsim import SentenceTransformer, SentenceTransformerModelCardData

    data = SentenceTransformerModelCardData(language="en", license="apache-2.0", model_name="My model",
                                            local_files_only=True, generate_widget_examples=False)
    model = SentenceTransformer(saved, model_card_data=data)
    assert model.model_card_data is data and data.language == ["en"] and data.model_name == "My model"
    assert data.base_model is None  # a local folder
    named = SentenceTransformer("sentence-transformers/all-MiniLM-L6-v2")  # the bundled copy of a hub model
    assert named.model_card_data.base_model == "sentence-transformers/all-MiniLM-L6-v2"
    assert SentenceTransformer(bundled_model_dir).model_card_data.base_model is None
    named._model_card_text = ""  # as in sentence-transformers: an empty loaded card asks for a new one
    card = (named.save(tmp_path / "new") / "README.md").read_text(encoding="utf-8")
    assert 'SentenceTransformer("sentence_transformers_model_id")' in card and "## Usage" in card


def test_the_evaluation_table_keeps_numbers_and_escapes_cells() -> None:
    from sentsim.persistence.card_data import ModelCardData
    from sentsim.persistence.minimal_card import render_minimal_card

    card = ModelCardData()
    card.set_evaluation_metrics(object(), {"a|b_spearman": 0.5, "undefined": float("nan"), "flag": True}, step=3)
    card.set_evaluation_metrics(object(), {"a|b_spearman": 0.75})  # a later evaluation's figure wins
    text = render_minimal_card(model_name="m", base_model="b", dimensions=3, max_seq_length=4, pooling="mean",
                               calibrated=False, card=card)
    assert "| a\\|b_spearman | 0.7500 |" in text and "| undefined | nan |" in text and "flag" not in text


def test_the_onnx_encoder_saves_with_their_arguments(encoders, tmp_path: Path) -> None:
    onnx = encoders["onnx"]
    named = onnx.save(tmp_path / "named", model_name="me/tiny-onnx-copy")
    assert 'SentenceTransformer("me/tiny-onnx-copy")' in (named / "README.md").read_text(encoding="utf-8")
    assert (named / "onnx").is_dir() and (named / "modules.json").is_file()
    bare = onnx.save_pretrained(tmp_path / "bare", create_model_card=False)
    assert not (bare / "README.md").exists() and (bare / "modules.json").is_file()
    with pytest.raises(ValueError, match="safetensors"):
        onnx.save(tmp_path / "pickled", safe_serialization=False)
    assert not (tmp_path / "pickled").exists()
