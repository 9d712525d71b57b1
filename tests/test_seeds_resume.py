"""``sentsim train --seeds N`` stopped part-way: the finished seeds are kept and ``--resume`` trains the rest."""

from __future__ import annotations

import json
import signal

from sentsim.cli import EXIT_OK, EXIT_USAGE
from sentsim.training import seeds as seeds_module
from sentsim.training import signals
from sentsim.training.output_folder import RUN_MARKER
from sentsim.training.run import run_training
from tests.cli_support import run_cli


def _train_seeds(capsys, model_dir, data_dir, run, *extra):
    return run_cli(capsys, "train", "--base-model", model_dir, "--data", data_dir / "train.tsv",
                   "--dev-data", data_dir / "dev.tsv", "--test-data", data_dir / "test.tsv",
                   "--batch-size", "4", "--seeds", "3", "--seed", "7", "--output", run, *extra)


def _stop_at_seed(monkeypatch, stop_seed: int) -> list[int]:
    """run_training, except that the run with ``stop_seed`` is stopped by SIGTERM; returns the seeds trained."""
    real, trained = run_training, []

    def training(options, config):
        if config.seed == stop_seed:
            raise signals.Interrupted(signal.SIGTERM)
        trained.append(config.seed)
        return real(options, config)

    monkeypatch.setattr(seeds_module, "run_training", training)
    return trained


def test_a_stopped_seeds_run_keeps_its_finished_seeds_and_resumes_the_rest(capsys, tmp_path, monkeypatch,
                                                                           model_dir, data_dir):
    run = tmp_path / "seeds"
    trained = _stop_at_seed(monkeypatch, 8)
    code, _out, err = _train_seeds(capsys, model_dir, data_dir, run)
    assert code == 128 + signal.SIGTERM
    assert f"sentsim train --resume {run}" in err and "(7)" in err
    assert trained == [7] and (run / "seed-7" / "summary.json").is_file()
    assert not (run / "seed-8").exists() and not (run / "seeds.json").exists()
    assert (run / seeds_module.SEEDS_PLAN).is_file()
    first = (run / "seed-7" / "summary.json").read_bytes()

    trained = _stop_at_seed(monkeypatch, -1)
    code, out, err = run_cli(capsys, "train", "--resume", run, "--json")
    assert code == EXIT_OK, err
    assert trained == [8, 9], "the finished seed is not trained again"
    result = json.loads(out)
    assert result["seeds"] == [7, 8, 9] and [entry["seed"] for entry in result["runs"]] == [7, 8, 9]
    assert (run / "seed-7" / "summary.json").read_bytes() == first
    assert json.loads((run / "seeds.json").read_text())["runs"] == result["runs"]
    assert not (run / seeds_module.SEEDS_PLAN).exists()
    assert json.loads((run / RUN_MARKER).read_text())["kind"] == "seeds"

    code, _out, err = run_cli(capsys, "train", "--resume", run)
    assert code == EXIT_USAGE and "finished --seeds run" in err


def test_resume_refuses_options_that_change_a_stopped_seeds_run(capsys, tmp_path, monkeypatch,
                                                                model_dir, data_dir):
    run = tmp_path / "seeds"
    _stop_at_seed(monkeypatch, 7)
    code, _out, err = _train_seeds(capsys, model_dir, data_dir, run)
    assert code == 128 + signal.SIGTERM and "none yet" in err
    code, _out, err = run_cli(capsys, "train", "--resume", run, "--batch-size", "8")
    assert code == EXIT_USAGE and "batch" in err
    # The folder is marked as sentsim's from the start, so --overwrite may clear the stopped run.
    _stop_at_seed(monkeypatch, -1)
    code, _out, err = _train_seeds(capsys, model_dir, data_dir, run, "--seeds", "2", "--overwrite", "--json")
    assert code == EXIT_OK, err
    assert sorted(path.name for path in run.glob("seed-*")) == ["seed-7", "seed-8"]
