"""STS sets as the Hugging Face Hub holds them: a downloaded dataset folder (MTEB's jsonl.gz per split,
sentence-transformers' Parquet shards) or a dataset id fetched with huggingface_hub (faked here: no network)."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from sentsim.data.sources import is_single_set, load_pairs
from sentsim.errors import ConfigError, DataFormatError, OfflineError

from .cli_support import run_cli

ROWS = [("A man plays a flute.", "A man plays the flute.", 4.6), ("A dog runs.", "A cat sleeps.", 0.8),
        ("The red car.", "A red car.", 4.2), ("Two kids play.", "A woman eats.", 0.2)]


def _jsonl_gz(path: Path, rows: list[tuple[str, str, float]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(path, "wt", encoding="utf-8") as handle:
        for first, second, score in rows:
            handle.write(json.dumps({"sentence1": first, "sentence2": second, "score": score}) + "\n")
    return path


@pytest.fixture
def mteb_folder(tmp_path: Path) -> Path:
    """Laid out as mteb/stsbenchmark-sts is on the Hub: one gzip-compressed JSON-lines file per split."""
    folder = tmp_path / "stsbenchmark-sts"
    _jsonl_gz(folder / "train.jsonl.gz", ROWS)
    _jsonl_gz(folder / "validation.jsonl.gz", ROWS[:3])
    _jsonl_gz(folder / "test.jsonl.gz", ROWS[1:])
    (folder / "README.md").write_text("---\nlicense: cc-by-sa-4.0\n---\n", encoding="utf-8")
    (folder / ".cache").mkdir()
    _jsonl_gz(folder / ".cache" / "train.jsonl.gz", ROWS[:1])  # huggingface_hub's bookkeeping: not data
    return folder


def test_a_downloaded_mteb_folder_reads_each_split(mteb_folder: Path) -> None:
    train = load_pairs(mteb_folder, split="train")
    assert len(train) == 4 and train.source == str(mteb_folder / "train.jsonl.gz")
    dev = load_pairs(mteb_folder, split="dev")  # the Hub's "validation"
    assert dev.sentences1 == [row[0] for row in ROWS[:3]] and dev.scores.tolist() == pytest.approx([0.92, 0.16, 0.84])
    assert load_pairs(mteb_folder, split="test").sentences2 == [row[1] for row in ROWS[1:]]
    assert not is_single_set(mteb_folder)  # it has splits, so --split applies


def test_parquet_shards_are_read_in_order_with_their_options(tmp_path: Path) -> None:
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    folder = tmp_path / "stsb"
    (folder / "data").mkdir(parents=True)
    for shard, rows in enumerate((ROWS[:2], ROWS[2:])):
        pq.write_table(pa.table({"s1": [r[0] for r in rows], "s2": [r[1] for r in rows],
                                 "label": [r[2] / 5 for r in rows]}),
                       folder / "data" / f"train-0000{shard}-of-00002.parquet")
    dataset = load_pairs(folder, split="train", sentence1_column="s1", sentence2_column="s2", score_column="label",
                         score_range=(0.0, 1.0))
    assert dataset.sentences1 == [row[0] for row in ROWS] and [pair.line for pair in dataset] == [1, 2, 1, 2]
    assert dataset.source == f"{folder / 'data'} (train: 2 files)"
    assert dataset.scores.tolist() == pytest.approx([0.92, 0.16, 0.84, 0.04])
    with pytest.raises(DataFormatError, match=r"train-00000-of-00002\.parquet.*'sentence1'"):
        load_pairs(folder, split="train")  # its own column names need the options, as any pair file's


def test_missing_splits_and_mixed_configurations_are_refused_with_the_way_out(tmp_path: Path) -> None:
    only_test = tmp_path / "sickr-sts"
    _jsonl_gz(only_test / "test.jsonl.gz", ROWS)
    with pytest.raises(ConfigError, match=r"has no dev split \(validation or dev or valid or val\); its splits: test"):
        load_pairs(only_test, split="dev")
    crosslingual = tmp_path / "sts22"
    for language in ("de", "en"):
        _jsonl_gz(crosslingual / language / "test.jsonl.gz", ROWS)
    with pytest.raises(ConfigError, match=r"several configurations \(de, en\); pass --data with the folder of one"):
        load_pairs(crosslingual, split="test")
    assert len(load_pairs(crosslingual / "en", split="test")) == 4
    numbered = tmp_path / "numbered"
    _jsonl_gz(numbered / "test" / "0000.jsonl.gz", ROWS)  # a shard named by number, in its split's folder
    assert len(load_pairs(numbered, split="test")) == 4


class FakeSnapshots:
    """Stands in for huggingface_hub.snapshot_download: records calls, returns a folder or raises."""

    def __init__(self, folder: Path | None = None, error: Exception | None = None) -> None:
        self.folder, self.error, self.calls = folder, error, []

    def __call__(self, repo_id, **options):
        self.calls.append((repo_id, options))
        if self.error is not None:
            raise self.error
        return str(self.folder)


def test_a_dataset_id_is_downloaded_with_huggingface_hub(mteb_folder: Path, monkeypatch) -> None:
    import huggingface_hub

    for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "SENTSIM_OFFLINE"):
        monkeypatch.delenv(name, raising=False)
    fake = FakeSnapshots(mteb_folder)
    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake)
    assert len(load_pairs("mteb/stsbenchmark-sts", split="test")) == 3
    assert len(load_pairs("hf://datasets/mteb/stsbenchmark-sts", split="dev")) == 3
    repo_id, options = fake.calls[0]
    assert repo_id == "mteb/stsbenchmark-sts" and options["repo_type"] == "dataset"
    assert options["local_files_only"] is False and "*.parquet" in options["allow_patterns"]
    assert "*.jsonl.gz" in options["allow_patterns"] and "*.gz" not in options["allow_patterns"]  # no .tar.gz
    with pytest.raises(ConfigError, match=r"no such file or folder: data/pairs\.tsv$"):
        load_pairs("data/pairs.tsv")  # a missing file is a typo, never a download
    assert len(fake.calls) == 2


def test_offline_or_unknown_datasets_say_what_to_do(monkeypatch) -> None:
    import huggingface_hub
    from huggingface_hub.errors import LocalEntryNotFoundError, RepositoryNotFoundError

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    fake = FakeSnapshots(error=LocalEntryNotFoundError("not in the cache"))
    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake)
    with pytest.raises(OfflineError, match=r"no such file or folder: mteb/sickr-sts; .*HF_HUB_OFFLINE.*--data PATH"):
        load_pairs("mteb/sickr-sts", split="test")
    assert fake.calls[0][1]["local_files_only"] is True  # offline: the cache only
    monkeypatch.delenv("HF_HUB_OFFLINE")
    import httpx

    missing = RepositoryNotFoundError("404", response=httpx.Response(404, request=httpx.Request("GET", "https://x")))
    monkeypatch.setattr(huggingface_hub, "snapshot_download", FakeSnapshots(error=missing))
    with pytest.raises(ConfigError, match="nor a dataset 'someone/nothing' on the Hugging Face hub"):
        load_pairs("someone/nothing")


def test_evaluate_takes_a_hub_folder_and_its_split(capsys, mteb_folder: Path, model_dir: Path) -> None:
    code, out, err = run_cli(capsys, "evaluate", model_dir, "--data", mteb_folder, "--split", "dev", "--quiet")
    assert code == 0, err
    assert f"on {mteb_folder / 'validation.jsonl.gz'}: 3 pairs" in out


def test_train_takes_its_three_splits_from_a_hub_folder(capsys, mteb_folder: Path, model_dir: Path,
                                                        tmp_path: Path) -> None:
    run = tmp_path / "run"
    code, _, err = run_cli(capsys, "train", "--base-model", model_dir, "--data", mteb_folder, "--epochs", "1",
                           "--batch-size", "2", "--output", run, "--json", "--quiet")
    assert code == 0, err
    assert json.loads((run / "config.json").read_text(encoding="utf-8"))["pairs"] == {"train": 4, "dev": 3, "test": 3}
    predictions = [json.loads(line) for line in (run / "predictions.jsonl").read_text(encoding="utf-8").splitlines()]
    assert sorted(row["sentence1"] for row in predictions) == sorted(row[0] for row in ROWS[1:])  # test.jsonl.gz's
