"""run_pieces: every piece once, side by side, errors and early stops handled (no torch, no model)."""

from __future__ import annotations

import threading
import time

import pytest

from sentsim.inference.parallel_runs import run_pieces


@pytest.mark.parametrize("workers", [1, 2, 5])
def test_every_piece_runs_once_and_comes_back_with_its_result(workers: int) -> None:
    pieces = [[index, index + 100] for index in range(23)]
    results = list(run_pieces(pieces, lambda piece: sum(piece), workers=workers))
    assert sorted(piece[0] for piece, _ in results) == list(range(23))
    assert all(result == sum(piece) for piece, result in results)


def test_pieces_run_at_the_same_time() -> None:
    barrier = threading.Barrier(2, timeout=10)  # breaks (and the test fails) unless two pieces meet

    def run(piece: list[int]) -> str:
        barrier.wait()
        return threading.current_thread().name

    names = {name for _, name in run_pieces([[0], [1]], run, workers=2)}
    assert len(names) == 2 and all(name.startswith("sentsim-run") for name in names)


def test_one_worker_or_one_piece_runs_in_the_calling_thread_in_order() -> None:
    caller = threading.current_thread().name
    ran = list(run_pieces([[2], [0], [1]], lambda piece: threading.current_thread().name, workers=1))
    assert [piece for piece, _ in ran] == [[2], [0], [1]] and {name for _, name in ran} == {caller}
    assert list(run_pieces([[7]], lambda piece: threading.current_thread().name, workers=4)) == [([7], caller)]


def test_an_error_in_a_piece_reaches_the_caller_and_cancels_the_rest() -> None:
    started: list[int] = []

    def run(piece: list[int]) -> int:
        started.append(piece[0])
        if piece[0] == 0:
            raise RuntimeError("broken batch")
        time.sleep(0.01)
        return piece[0]

    with pytest.raises(RuntimeError, match="broken batch"):
        list(run_pieces([[index] for index in range(50)], run, workers=2))
    assert len(started) < 50  # at most the queued few ran; the rest were cancelled


def test_stopping_early_leaves_the_remaining_pieces_unrun() -> None:
    started: list[int] = []

    def run(piece: list[int]) -> int:
        started.append(piece[0])
        time.sleep(0.005)
        return piece[0]

    runs = run_pieces([[index] for index in range(100)], run, workers=2)
    next(runs)
    runs.close()
    assert len(started) <= 2 * 2 + 2  # what was queued when it stopped, no more


def test_leave_process_group_ends_an_open_group_and_is_a_no_op_without_one(tmp_path) -> None:
    """`sentsim train` ends every process's gloo group before exit: an open one can abort in its destructor."""
    import torch.distributed as distributed

    from sentsim.training.run import leave_process_group

    assert leave_process_group() is False  # no group: nothing happens
    distributed.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    assert distributed.is_initialized()
    assert leave_process_group() is True
    assert not distributed.is_initialized()


def test_exit_without_teardown_keeps_buffered_output_and_the_exit_code(tmp_path) -> None:
    """A process of a multi-process run ends with os._exit: what it printed must still arrive, in full."""
    import subprocess
    import sys

    script = ("import sys\nfrom sentsim.training.run import exit_without_teardown\n"
              "print('{\"steps\": 50}', end='')\nprint('warning: kept', file=sys.stderr, end='')\n"
              "import atexit\natexit.register(lambda: print('teardown ran'))\nexit_without_teardown(3)\n")
    process = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                             cwd=tmp_path)
    assert process.returncode == 3
    assert process.stdout == '{"steps": 50}'  # flushed, and atexit (teardown) never ran
    assert process.stderr == "warning: kept"
