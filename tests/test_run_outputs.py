"""train --output safety: fresh folders, --overwrite only for sentsim run folders, no '.', one writer at a time."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from sentsim.errors import ConfigError
from sentsim.persistence.locks import lock_path, output_lock
from sentsim.training.output_folder import RUN_MARKER, check_run_output, is_run_folder, write_run_marker

from .cli_support import assert_one_line_error, pair_file, run_cli


@pytest.fixture(scope="module")
def pairs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return pair_file(tmp_path_factory.mktemp("outputs-data") / "pairs.tsv")


def _train(capsys, model_dir: Path, pairs: Path, output: Path | str, *extra: object) -> tuple[int, str, str]:
    return run_cli(capsys, "train", "--base-model", model_dir, "--data", pairs, "--dev-data", pairs,
                   "--epochs", "1", "--batch-size", "5", "--quiet", "--output", output, *extra)


# -- the library checks ----------------------------------------------------------------------------------
def test_fresh_and_empty_folders_are_allowed(tmp_path: Path):
    assert check_run_output(tmp_path / "new" / "run", overwrite=False) == tmp_path / "new" / "run"
    (tmp_path / "empty").mkdir()
    assert check_run_output(tmp_path / "empty", overwrite=False) == tmp_path / "empty"


def test_a_folder_of_other_files_is_refused_even_with_overwrite(tmp_path: Path):
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / "notes.txt").write_text("mine")
    for overwrite in (False, True):
        with pytest.raises(ConfigError, match="did not write"):
            check_run_output(tmp_path / "runs", overwrite=overwrite)


def test_a_file_is_refused(tmp_path: Path):
    (tmp_path / "result").write_text("mine")
    with pytest.raises(ConfigError, match="not a folder"):
        check_run_output(tmp_path / "result", overwrite=True)
    with pytest.raises(ConfigError, match="is a file"):
        check_run_output(tmp_path / "result" / "run", overwrite=True)


def test_the_working_folder_and_its_parents_are_refused(tmp_path: Path, monkeypatch):
    (tmp_path / "inner").mkdir()
    monkeypatch.chdir(tmp_path / "inner")
    for target in (".", "..", str(tmp_path / "inner"), "/"):
        with pytest.raises(ConfigError, match="is "):
            check_run_output(target, overwrite=True)


def test_marked_run_folder_with_extra_files_is_refused(tmp_path: Path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text("{}")
    write_run_marker(run)
    assert is_run_folder(run)
    with pytest.raises(ConfigError, match="--overwrite"):
        check_run_output(run, overwrite=False)
    assert check_run_output(run, overwrite=True) == run
    (run / "my-analysis.ipynb").write_text("{}")
    assert not is_run_folder(run)
    with pytest.raises(ConfigError, match=r"my-analysis\.ipynb"):
        check_run_output(run, overwrite=True)


def test_legacy_run_and_seeds_folders_are_recognised(tmp_path: Path):
    run = tmp_path / "parent" / "seed-3"
    run.mkdir(parents=True)
    (run / "config.json").write_text(json.dumps({"base_model": "x"}))
    (run / "summary.json").write_text("{}")
    (run / "model").mkdir()
    assert RUN_MARKER not in os.listdir(run)
    assert is_run_folder(run) and is_run_folder(run.parent)
    (run.parent / "seeds.json").write_text("{}")
    assert is_run_folder(run.parent)
    (run.parent / "data.csv").write_text("a,b")
    assert not is_run_folder(run.parent)


# -- the lock ---------------------------------------------------------------------------------------------
def test_a_held_lock_refuses_a_second_writer_naming_the_pid(tmp_path: Path):
    target = tmp_path / "run"
    with output_lock(target) as path:
        assert json.loads(path.read_text())["pid"] == os.getpid()
        with pytest.raises(ConfigError, match=f"pid {os.getpid()}"), output_lock(target):
            pass
    assert not lock_path(target).exists()
    with output_lock(target):  # free again
        pass


def test_a_lock_held_by_another_process_refuses(tmp_path: Path):
    target = tmp_path / "run"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time\nfrom sentsim.persistence.locks import output_lock\n"
                               f"with output_lock({str(target)!r}):\n    print('held', flush=True)\n"
                               "    time.sleep(60)\n"], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(ConfigError, match=f"pid {holder.pid}"), output_lock(target):
            pass
    finally:
        holder.kill()
        holder.wait()
    with output_lock(target):  # the kernel dropped the dead holder's lock
        pass


def test_a_stale_lock_of_a_dead_pid_is_taken_over_with_a_warning(tmp_path: Path, caplog):
    target = tmp_path / "run"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    lock_path(target).write_text(json.dumps({"pid": int(dead.stdout), "host": "x"}))
    with caplog.at_level(logging.WARNING), output_lock(target):
        pass
    assert f"pid {int(dead.stdout)}" in caplog.text and "no longer runs" in caplog.text


# -- the command --------------------------------------------------------------------------------------------
def test_train_into_a_folder_of_earlier_runs_is_refused(capsys, tmp_path, model_dir, pairs):
    runs = tmp_path / "runs"
    (runs / "old").mkdir(parents=True)
    (runs / "old" / "precious.txt").write_text("an earlier result")
    for extra in ((), ("--overwrite",)):
        code, _, err = _train(capsys, model_dir, pairs, runs, *extra)
        assert_one_line_error(code, err, str(runs), "sentsim did not write")
    assert (runs / "old" / "precious.txt").read_text() == "an earlier result"


def test_train_onto_a_file_or_the_current_folder_is_refused(capsys, tmp_path, model_dir, pairs, monkeypatch):
    existing = tmp_path / "result.txt"
    existing.write_text("mine")
    code, _, err = _train(capsys, model_dir, pairs, existing, "--overwrite")
    assert_one_line_error(code, err, str(existing), "not a folder")
    assert existing.read_text() == "mine"
    monkeypatch.chdir(tmp_path)
    code, _, err = _train(capsys, model_dir, pairs, ".", "--overwrite")
    assert_one_line_error(code, err, "--output .", "current folder")


def test_train_replaces_its_own_run_only_with_overwrite(capsys, tmp_path, model_dir, pairs):
    run = tmp_path / "run"
    code, _, err = _train(capsys, model_dir, pairs, run)
    assert code == 0, err
    assert is_run_folder(run)
    first = (run / "summary.json").read_text()
    code, _, err = _train(capsys, model_dir, pairs, run)
    assert_one_line_error(code, err, str(run), "--overwrite")
    assert (run / "summary.json").read_text() == first
    code, _, err = _train(capsys, model_dir, pairs, run, "--overwrite", "--seed", "5")
    assert code == 0, err
    assert json.loads((run / "config.json").read_text())["seed"] == 5
    # A file of the user's anywhere inside (not only at the top) makes the folder not sentsim's to replace.
    notes = run / "model" / "my_notes.txt"
    notes.write_text("mine")
    code, _, err = _train(capsys, model_dir, pairs, run, "--overwrite")
    assert_one_line_error(code, err, str(run), "model/my_notes.txt")
    assert notes.read_text() == "mine"
    notes.unlink()
    # A run marked before markers listed files (copied, so every file is newer than its marker): sentsim's own
    # files by their layout are fine, anything else in a subfolder is not.
    marker = json.loads((run / RUN_MARKER).read_text())
    (run / RUN_MARKER).write_text(json.dumps({key: value for key, value in marker.items() if key != "files"}))
    (run / "model" / "calibration.json").write_text((run / "model" / "calibration.json").read_text())  # rewritten
    (run / "plots" / "notes.txt").write_text("mine")
    code, _, err = _train(capsys, model_dir, pairs, run, "--overwrite")
    assert_one_line_error(code, err, str(run), "plots/notes.txt")
    (run / "plots" / "notes.txt").unlink()
    code, _, err = _train(capsys, model_dir, pairs, run, "--overwrite")
    assert code == 0, err


def test_seeds_parent_is_checked_and_marked(capsys, tmp_path, model_dir, pairs):
    parent = tmp_path / "seeds"
    parent.mkdir()
    (parent / "keep.txt").write_text("mine")
    code, _, err = _train(capsys, model_dir, pairs, parent, "--seeds", "2", "--overwrite")
    assert_one_line_error(code, err, str(parent), "keep.txt")
    fresh = tmp_path / "fresh"
    code, _, err = _train(capsys, model_dir, pairs, fresh, "--seeds", "2")
    assert code == 0, err
    assert json.loads((fresh / RUN_MARKER).read_text())["kind"] == "seeds"
    assert is_run_folder(fresh)
    code, _, err = _train(capsys, model_dir, pairs, fresh, "--seeds", "2")
    assert_one_line_error(code, err, str(fresh), "--overwrite")


def test_train_while_another_run_holds_the_output_fails_at_start(capsys, tmp_path, model_dir, pairs):
    run = tmp_path / "run"
    with output_lock(run):
        code, _, err = _train(capsys, model_dir, pairs, run)
    assert_one_line_error(code, err, str(run), f"pid {os.getpid()}", "another sentsim run")
    assert not run.exists()
