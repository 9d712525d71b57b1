"""Checkpoints and resume: SIGKILL then --resume ends bit-for-bit where an uninterrupted run ends;
SIGINT/SIGTERM save, name the resume command and exit 130/143; conflicting options and untrainable
data are refused; a 2-process ``accelerate launch`` run writes one run folder."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sentsim.cli import EXIT_OK, EXIT_USAGE, main
from tests.conftest import REPO, TRAIN_PAIRS

HEADER = "sentence1\tsentence2\tscore\n"
# Enough steps that a kill lands mid-run: 400 pairs, batch 4 → 100 steps per epoch, 3 epochs.
ROWS = 400


def _pair_file(path: Path, rows: int, *, score: float | None = None) -> Path:
    lines = []
    for index in range(rows):
        a, b, value = TRAIN_PAIRS[index % len(TRAIN_PAIRS)]
        # a small per-row change, so rows differ and the shuffle matters
        lines.append(f"{a}\t{b} {'and ' * (index % 3)}\t{(value if score is None else score) * 5:g}\n")
    path.write_text(HEADER + "".join(lines), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("resume-data")
    _pair_file(folder / "train.tsv", ROWS)
    _pair_file(folder / "dev.tsv", 30)
    _pair_file(folder / "test.tsv", 20)
    return folder


def _train_args(base: Path, data: Path, output: Path, *extra: object) -> list[str]:
    return [str(arg) for arg in ("train", "--base-model", base, "--pooling", "mean", "--data", data / "train.tsv",
                                 "--dev-data", data / "dev.tsv", "--test-data", data / "test.tsv",
                                 "--output", output, "--batch-size", 4, "--epochs", 3, "--evaluation-steps", 40,
                                 "--recipe", "classic", "--device", "cpu", "--quiet", *extra)]


def _free_port() -> int:
    """A TCP port nothing listens on now, for torchrun's store: a fixed one can be taken on a shared host."""
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _environment() -> dict[str, str]:
    env = dict(os.environ, PYTHONPATH=f"{REPO / 'src'}{os.pathsep}{REPO}", OMP_NUM_THREADS="1",
               TOKENIZERS_PARALLELISM="false")
    env.pop("ACCELERATE_USE_CPU", None)
    return env


def _sentsim(argv: list[str], **options) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "sentsim", *argv], env=_environment(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **options)


def _wait_for_checkpoint(process: subprocess.Popen, partial: Path, timeout: float = 120.0) -> Path:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = sorted(path for path in partial.glob("checkpoint-*") if (path / "trainer_state.json").is_file())
        if found:
            return found[0]
        if process.poll() is not None:
            raise AssertionError(f"the run ended before its first checkpoint: {process.communicate()}")
        time.sleep(0.01)
    process.kill()
    raise AssertionError("no checkpoint appeared")


def _weights(run: Path) -> dict:
    from safetensors.torch import load_file

    return {path.relative_to(run).as_posix() + ":" + name: tensor
            for path in sorted((run / "model").rglob("*.safetensors")) for name, tensor in load_file(path).items()}


def _records(run: Path) -> list[dict]:
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return [{key: value for key, value in record.items() if key != "pairs_per_second"} for record in records]


@pytest.fixture(scope="module")
def uninterrupted(tiny_transformer_dir: Path, data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    run = tmp_path_factory.mktemp("alone") / "run"
    process = _sentsim(_train_args(tiny_transformer_dir, data, run, "--save-steps", 25))
    _, err = process.communicate(timeout=300)
    assert process.returncode == 0, err
    assert not (run.parent / "run.partial").exists()  # a finished run leaves no checkpoints behind
    return run


def test_sigkill_then_resume_ends_exactly_like_the_run_left_alone(uninterrupted, tiny_transformer_dir, data,
                                                                  tmp_path):
    import torch

    run = tmp_path / "run"
    argv = _train_args(tiny_transformer_dir, data, run, "--save-steps", 25)
    process = _sentsim(argv)
    checkpoint = _wait_for_checkpoint(process, tmp_path / "run.partial")
    process.send_signal(signal.SIGKILL)
    process.communicate(timeout=60)
    assert process.returncode == -signal.SIGKILL
    assert not run.exists()
    step = json.loads((checkpoint / "trainer_state.json").read_text())["step"]
    assert 0 < step < 300

    resumed = _sentsim(["train", "--resume", str(run), "--quiet"])
    _, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, err
    assert not (tmp_path / "run.partial").exists()

    alone, again = _weights(uninterrupted), _weights(run)
    assert alone.keys() == again.keys() and alone
    for name in alone:
        assert torch.equal(alone[name], again[name]), name
    assert _records(run) == _records(uninterrupted)
    first, second = (json.loads((folder / "summary.json").read_text()) for folder in (uninterrupted, run))
    assert first["dev"] == second["dev"] and first["test"] == second["test"]
    assert first["best_step"] == second["best_step"]
    assert second["timing"]["train_seconds"] >= 0


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_signal_saves_a_checkpoint_names_the_resume_command_and_exits(tiny_transformer_dir, data, tmp_path,
                                                                      signum, code):
    run = tmp_path / "run"
    # no --save-steps: the signal alone saves; --save-steps 1 only to know when training has started
    process = _sentsim(_train_args(tiny_transformer_dir, data, run))
    deadline = time.monotonic() + 120
    while not list(tmp_path.glob(".run.tmp-*/metrics.jsonl")) and time.monotonic() < deadline:
        time.sleep(0.01)
    metrics = next(tmp_path.glob(".run.tmp-*/metrics.jsonl"))
    while not metrics.read_text() and time.monotonic() < deadline:  # the base evaluation is logged
        time.sleep(0.01)
    process.send_signal(signum)
    _, err = process.communicate(timeout=120)
    assert process.returncode == code, err
    assert f"resume with: sentsim train --resume {run}" in err
    assert signal.Signals(signum).name in err
    partial = tmp_path / "run.partial"
    assert str(partial) in err
    leftovers = sorted(path.name for path in tmp_path.iterdir())
    assert leftovers == ["run.partial"], leftovers  # no hidden temporary folder, no run folder
    assert list(partial.glob("checkpoint-*/trainer_state.json"))


def test_a_signal_after_training_lets_the_run_folder_be_written_first(capsys, tiny_transformer_dir, data, tmp_path,
                                                                       monkeypatch):
    """Evaluation, calibration and report come after training: stopping there would throw the model away."""
    import os

    import sentsim.training.run as run_module

    write_report = run_module.write_report

    def signalled_then_written(folder):
        os.kill(os.getpid(), signal.SIGTERM)  # as an orchestrator would, while the report is written
        return write_report(folder)

    monkeypatch.setattr(run_module, "write_report", signalled_then_written)
    run = tmp_path / "run"
    code = main(_train_args(tiny_transformer_dir, data, run, "--epochs", 1))
    err = capsys.readouterr().err
    assert code == 143, err
    assert "after training: the run was finished first" in err
    assert (run / "summary.json").is_file() and (run / "model" / "modules.json").is_file()
    assert sorted(path.name for path in tmp_path.iterdir()) == ["run"]  # no partial folder, no temporaries


def test_resume_refuses_conflicting_options_and_missing_runs(capsys, tiny_transformer_dir, data, tmp_path):
    from sentsim.training.resume import RESUME_FILE

    run = tmp_path / "run"
    code = main(["train", "--resume", str(run)])
    assert code == EXIT_USAGE
    assert "no unfinished run" in capsys.readouterr().err
    partial = tmp_path / "run.partial"
    (partial / "checkpoint-00000005").mkdir(parents=True)
    (partial / "checkpoint-00000005" / "trainer_state.json").write_text("{}")
    argv = _train_args(tiny_transformer_dir, data, run)
    command = "sentsim " + " ".join(argv)
    (partial / RESUME_FILE).write_text(json.dumps({"options": {"output": str(run), "command": command},
                                                   "config": {}}))
    capsys.readouterr()
    code = main(["train", "--resume", str(run), "--batch-size", "8"])
    err = capsys.readouterr().err
    assert code == EXIT_USAGE and len(err.strip().splitlines()) == 1
    assert "--batch-size 8 (saved run: 4)" in err
    # a new run onto an output whose unfinished run waits is refused too
    code = main(argv)
    err = capsys.readouterr().err
    assert code == EXIT_USAGE and "--resume" in err and "run.partial" in err


@pytest.mark.parametrize(("rows", "score", "reason"), [(1, None, "1 training pair"),
                                                        (12, 0.4, "the same score")])
def test_untrainable_data_is_refused_before_training(capsys, tiny_transformer_dir, data, tmp_path, rows, score,
                                                     reason):
    train = _pair_file(tmp_path / "train.tsv", rows, score=score)
    argv = _train_args(tiny_transformer_dir, data, tmp_path / "run")
    argv[argv.index(str(data / "train.tsv"))] = str(train)
    code = main(argv)
    err = capsys.readouterr().err
    assert code == EXIT_USAGE and len(err.strip().splitlines()) == 1 and reason in err
    assert sorted(path.name for path in tmp_path.iterdir()) == ["train.tsv"]


def test_a_run_that_keeps_the_base_model_says_so(capsys, tiny_transformer_dir, data, tmp_path):
    run = tmp_path / "run"
    argv = _train_args(tiny_transformer_dir, data, run, "--lr", "1e-12", "--json")
    argv[argv.index("--epochs") + 1] = "1"
    code = main(argv)
    captured = capsys.readouterr()
    assert code == EXIT_OK, captured.err
    summary = json.loads((run / "summary.json").read_text())
    assert summary["best_step"] == 0
    assert any("base model" in text for text in summary["warnings"])
    assert "no dev evaluation improved on the base model" in captured.err
    assert "Warning: no dev evaluation improved" in (run / "report.md").read_text()
    assert summary["timing"]["train_seconds"] >= 0


def test_library_train_refuses_constant_scores(tiny_model):
    from sentsim.errors import ConfigError
    from sentsim.training.config import TrainConfig
    from sentsim.training.loop import train

    with pytest.raises(ConfigError, match="same score"):
        train(tiny_model, sentences_a=["a dog", "a cat"], sentences_b=["a car", "a man"], labels=[0.5, 0.5],
              config=TrainConfig())


def test_two_processes_under_accelerate_launch_write_one_run_folder(tiny_transformer_dir, data, tmp_path):
    pytest.importorskip("accelerate")
    run = tmp_path / "run"
    argv = _train_args(tiny_transformer_dir, data, run, "--json")
    argv[argv.index("--epochs") + 1] = "1"
    # accelerate 1.15 starts one process for `--cpu --num_processes 2` (it wants mpirun for that);
    # --multi_gpu starts them through torchrun, and --device cpu makes them CPU processes over gloo.
    process = subprocess.run([sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes",
                              "2", "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
                              "--main_process_port", str(_free_port()), "-m", "sentsim", *argv], env=_environment(),
                             capture_output=True, text=True, timeout=180)
    assert process.returncode == EXIT_OK, process.stderr[-3000:]
    assert sorted(path.name for path in tmp_path.iterdir()) == ["run"]
    summary = json.loads((run / "summary.json").read_text())
    # 400 pairs, 4 per process and step, 2 processes: 50 steps
    assert summary["steps"] == 50
    assert -100 <= summary["test"]["spearman_cosine"] <= 100
    records = _records(run)
    assert [record["step"] for record in records if record["kind"] == "eval"] == [0, 40, 50]
    figures = json.loads(process.stdout.strip().splitlines()[-1])
    assert figures["output"] == str(run)


def test_length_grouped_shards_cover_every_pair_in_equal_whole_batches():
    """accelerate's shards assume only the last batch is short; with it anywhere a process got a batch
    fewer than its loader's length, and the epoch-end evaluation never came."""
    import numpy as np
    from accelerate.data_loader import BatchSamplerShard

    from sentsim.training.batching import LengthGroupedSampler

    lengths = list(np.random.default_rng(0).integers(5, 40, 5749))
    sampler = LengthGroupedSampler(lengths, batch_size=8, seed=42, short_batch_last=True)
    seen = []
    for rank in (0, 1):
        shard = BatchSamplerShard(sampler, num_processes=2, process_index=rank, split_batches=False)
        batches = list(shard)
        assert len(batches) == len(shard) == 360 and {len(batch) for batch in batches} == {8}
        seen += [index for batch in batches for index in batch]
    assert set(seen) == set(range(5749))
    plain = LengthGroupedSampler(lengths, batch_size=8, seed=42)
    assert sorted(map(tuple, plain)) == sorted(map(tuple, sampler))  # the same batches, one moved to the end
