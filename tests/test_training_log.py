"""What a training run tells its user on stderr: start line, estimate, progress and evaluation lines."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from sentsim.progress import TrainingLog, format_duration, log_lines_enabled

from .conftest import REPO, TRAIN_PAIRS


@pytest.mark.parametrize(("seconds", "text"), [(0.4, "0 s"), (42, "42 s"), (185, "3 min 05 s"),
                                               (3720, "1 h 02 min")])
def test_format_duration(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


def test_quiet_and_sentsim_quiet_silence_the_lines_ci_does_not(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SENTSIM_QUIET", raising=False)
    monkeypatch.setenv("CI", "1")
    assert log_lines_enabled() is True
    assert log_lines_enabled(quiet=True) is False
    monkeypatch.setenv("SENTSIM_QUIET", "1")
    assert log_lines_enabled() is False
    assert log_lines_enabled(quiet=False) is True


def _log(monkeypatch: pytest.MonkeyPatch, **kwargs) -> tuple[TrainingLog, io.StringIO]:
    monkeypatch.setattr(sys, "stderr", io.StringIO())  # not a terminal: periodic lines on
    monkeypatch.delenv("SENTSIM_QUIET", raising=False)
    stream = io.StringIO()
    return TrainingLog(stream=stream, **kwargs), stream


def test_lines_every_tenth_of_the_steps_with_estimate_and_evaluations(monkeypatch: pytest.MonkeyPatch) -> None:
    log, stream = _log(monkeypatch, total_steps=100, steps_per_epoch=50, evaluations=2, every_seconds=1e9)
    log.start(device="cpu", dtype="fp32", reason="this CPU has no native bf16", epochs=2, batch_size=16)
    log.evaluation(0, metric="spearman_cosine", score=80.0, best=80.0, seconds=4.0)
    for step in range(1, 101):
        log.step(step, pairs=16 * step, train_seconds=1.0 + 0.5 * step, loss=1.0 / step)
    lines = stream.getvalue().splitlines()
    assert lines[0] == ("training on cpu, fp32: this CPU has no native bf16; 100 steps = 2 epoch(s) of 50 steps, "
                        "batch 16")
    assert lines[1].startswith("eval step 0/100  dev spearman_cosine 80.00  best 80.00")
    # steps 2-6 take 0.5 s each: 100 steps ≈ 1.5 + 94 * 0.5 + 2.5 = 51 s; two evaluations of 4 s
    estimate = next(line for line in lines if line.startswith("estimated"))
    assert estimate == "estimated training time 51 s + 2 dev evaluation(s) ≈ 8 s (from steps 2–6)"
    progress = [line for line in lines if line.startswith("step ")]
    assert [line.split()[1] for line in progress] == [f"{step}/100" for step in range(10, 101, 10)]
    assert "epoch 0.20" in progress[0] and "32.0 pairs/s" in progress[1] and "ETA 5 s" in progress[-2]
    assert progress[-1].endswith("ETA 0 s")


def test_lines_every_few_seconds_and_none_when_quiet(monkeypatch: pytest.MonkeyPatch) -> None:
    log, stream = _log(monkeypatch, total_steps=1000, steps_per_epoch=1000, every_seconds=0.0)
    for step in range(1, 4):
        log.step(step, pairs=step, train_seconds=step, loss=0.5)
    assert [line.split()[1] for line in stream.getvalue().splitlines()] == ["1/1000", "2/1000", "3/1000"]
    quiet, quiet_stream = _log(monkeypatch, total_steps=10, steps_per_epoch=10, quiet=True)
    quiet.start(device="cpu", dtype="fp32", reason="asked for", epochs=1, batch_size=1)
    quiet.step(10, pairs=10, train_seconds=1.0, loss=0.1)
    assert quiet_stream.getvalue() == ""


def test_a_redirected_train_command_says_device_dtype_estimate_and_progress(tiny_transformer_dir: Path,
                                                                           tmp_path: Path) -> None:
    """The README's main job with stderr to a file: start line, estimate, progress and evaluation lines."""
    from sentsim import SentenceTransformer

    model = tmp_path / "model"
    SentenceTransformer.from_transformer(tiny_transformer_dir, pooling="mean").save(model)
    pairs = tmp_path / "pairs.tsv"
    pairs.write_text("sentence1\tsentence2\tscore\n" + "".join(f"{a}\t{b}\t{score * 5:g}\n"
                                                             for a, b, score in TRAIN_PAIRS), encoding="utf-8")
    environment = {name: value for name, value in os.environ.items() if name not in ("SENTSIM_QUIET", "CI")}
    environment.update(HF_HUB_OFFLINE="1", PYTHONPATH=str(REPO / "src"))
    with open(tmp_path / "stderr.log", "w+", encoding="utf-8") as stderr:
        completed = subprocess.run(
            [sys.executable, "-m", "sentsim", "train", "--base-model", str(model), "--data", str(pairs),
             "--dev-data", str(pairs), "--test-data", str(pairs), "--epochs", "2", "--batch-size", "1",
             "--device", "cpu", "--output", str(tmp_path / "run")],
            stdout=subprocess.PIPE, stderr=stderr, text=True, env=environment, timeout=300, check=False)
        stderr.seek(0)
        log = stderr.read()
    assert completed.returncode == 0, log
    assert "\r" not in log, "no progress bar redraws in a redirected log"
    assert re.search(r"^training on cpu, (fp32|bf16): this CPU has (no )?native bf16.*; 20 steps = 2 epoch\(s\) "
                     r"of 10 steps, batch 1$", log, re.MULTILINE), log
    assert re.search(r"^estimated training time \d+ s \+ 2 dev evaluation\(s\) ≈ \d+ s", log, re.MULTILINE), log
    steps = re.findall(r"^step (\d+)/20  epoch [\d.]+  loss [\d.]+  [\d.]+ pairs/s  ETA ", log, re.MULTILINE)
    assert steps[-1] == "20" and len(steps) >= 10, log
    evaluations = re.findall(r"^eval step (\d+)/20  dev spearman_cosine -?[\d.]+  best -?[\d.]+", log, re.MULTILINE)
    assert evaluations == ["0", "10", "20"], log


def test_time_spent_evaluating_does_not_make_a_progress_line_due(monkeypatch: pytest.MonkeyPatch) -> None:
    import sentsim.progress as progress

    clock = [0.0]
    monkeypatch.setattr(progress.time, "perf_counter", lambda: clock[0])
    log, stream = _log(monkeypatch, total_steps=100, steps_per_epoch=100, every_seconds=30.0)
    clock[0] = 60.0  # the base evaluation took a minute
    log.evaluation(0, metric="spearman_cosine", score=80.0, best=80.0, seconds=60.0)
    log.step(1, pairs=16, train_seconds=1.0, loss=0.5)
    assert not [line for line in stream.getvalue().splitlines() if line.startswith("step ")]
    clock[0] = 91.0
    log.step(2, pairs=32, train_seconds=31.0, loss=0.5)
    assert [line.split()[1] for line in stream.getvalue().splitlines() if line.startswith("step ")] == ["2/100"]


def test_a_logged_pairs_per_second_counts_training_time_only_across_evaluations_and_a_resume(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A window's rate is its pairs over its training seconds: an evaluation inside it (paused) and the
    time before a checkpoint's resume count not at all, and the time before a pause is kept."""
    from sentsim.training import checkpoint

    now = [100.0]
    monkeypatch.setattr(checkpoint.time, "perf_counter", lambda: now[0])
    meter = checkpoint.Throughput()
    now[0] += 2.0
    meter.add(10, 1.0)
    meter.pause()  # an evaluation of 50 s
    now[0] += 50.0
    meter.restart_clock()
    now[0] += 3.0
    meter.add(10, 3.0)
    saved = meter.state_dict()
    assert saved["window_seconds"] == 5.0
    resumed = checkpoint.Throughput()
    now[0] += 1000.0  # the run was stopped here, and restored later
    resumed.load_state_dict(saved)
    now[0] += 5.0
    resumed.add(20, 2.0)
    figures = resumed.take(lr=0.1)
    assert figures == {"loss": 2.0, "lr": 0.1, "pairs_per_second": 4.0}  # 40 pairs over 2 + 3 + 5 s
    resumed.load_state_dict({key: value for key, value in saved.items() if key != "window_seconds"})
    now[0] += 4.0
    resumed.add(4, 1.0)
    assert resumed.take(lr=0.1)["pairs_per_second"] == pytest.approx(24 / 4)  # an older checkpoint: from the restore
