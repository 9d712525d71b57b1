"""What the loop keeps track of besides the weights: the best dev checkpoint with patience, and throughput."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from torch import nn


def _call(evaluator: Callable[..., dict[str, float]], model: nn.Module, *, step: int,
          epoch: float) -> dict[str, float]:
    """Runs ``evaluator`` on ``model``, telling it the step and epoch when it asks for them (``fit``'s
    evaluator, which writes sentence-transformers' eval CSV rows with them); plain ones get the model."""
    if getattr(evaluator, "takes_progress", False):
        return evaluator(model, step=step, epoch=epoch)
    return evaluator(model)


class BestCheckpoint:
    """Scores dev when due, keeps the best weights in memory and says when patience has run out.

    Without an evaluator it does nothing: the loop then ends on its last weights.
    """

    def __init__(self, model: nn.Module, evaluator: Callable[[nn.Module], dict[str, float]] | None, *,
                 record: Callable[[dict[str, Any]], None], patience: int | None, keep_weights: bool,
                 primary_metric: str) -> None:
        self.model = model
        self.evaluator = evaluator
        self.record = record
        self.patience = patience
        self.keep_weights = keep_weights
        self.primary_metric = primary_metric
        self.step: int | None = None
        self.score: float | None = None
        self.metrics: dict[str, float] | None = None
        self.state: dict[str, Any] | None = None
        self.evaluations_without_gain = 0
        #: Time spent evaluating, which the loop leaves out of the training time.
        self.eval_seconds = 0.0

    def due(self, step: int, *, steps_per_epoch: int, every: int) -> bool:
        """After each epoch (``steps_per_epoch`` 0: not at epoch ends), and every ``every`` steps when that is
        not 0."""
        if self.evaluator is None:
            return False
        return bool(steps_per_epoch and step % steps_per_epoch == 0) or bool(every and step % every == 0)

    def evaluate(self, step: int, epoch: float, *, ranked: bool = True) -> bool:
        """Scores dev and logs it, keeps the weights if they are the best so far; True when patience ran out.

        ``ranked`` False only logs the scores: they neither set the best nor count against patience."""
        if self.evaluator is None:
            return False
        started = time.perf_counter()
        metrics = _call(self.evaluator, self.model, step=step, epoch=epoch)
        self.model.train()
        self.eval_seconds += time.perf_counter() - started
        self.record({"kind": "eval", "step": step, "epoch": round(epoch, 4), "split": "dev", **metrics})
        # sentence-transformers' evaluators name their primary metric only once they have run
        score = metrics[getattr(self.evaluator, "primary_metric", None) or self.primary_metric]
        if not ranked:
            return False
        if self.score is None or score > self.score:
            state = {name: tensor.detach().clone() for name, tensor in self.model.state_dict().items()} \
                if self.keep_weights else None
            self.step, self.score, self.metrics, self.state = step, score, metrics, state
            self.evaluations_without_gain = 0
            return False
        self.evaluations_without_gain += 1
        return self.patience_spent

    @property
    def patience_spent(self) -> bool:
        """True once ``patience`` evaluations in a row have not beaten the best: the run stops there."""
        return self.patience is not None and self.evaluations_without_gain >= self.patience

    def restore(self) -> None:
        """Puts the best weights back into the model (when kept)."""
        if self.state is not None:
            self.model.load_state_dict(self.state)

    def state_dict(self) -> dict[str, Any]:
        """Best step, score and metrics, patience count and evaluation time (JSON; the weights go apart)."""
        return {"step": self.step, "score": self.score, "metrics": self.metrics,
                "evaluations_without_gain": self.evaluations_without_gain, "eval_seconds": self.eval_seconds}

    def load_state_dict(self, state: dict[str, Any], weights: dict[str, Any] | None) -> None:
        """Back to a saved best-so-far (``weights``: the best weights, None when they were not kept)."""
        self.step, self.score, self.metrics = state["step"], state["score"], state["metrics"]
        self.evaluations_without_gain = state["evaluations_without_gain"]
        self.eval_seconds = state["eval_seconds"]
        self.state = weights if self.keep_weights else None


class Throughput:
    """Pairs per second and mean loss over the current logging window, and pairs seen in all.

    The clock starts when the meter is made, so the loop makes it right before the first step.
    """

    def __init__(self) -> None:
        self.started = time.perf_counter()
        #: Training time of the run before it was resumed from a checkpoint.
        self.earlier_seconds = 0.0
        self.pairs = 0
        #: Sum of every step's loss and the steps summed, for the run's mean loss whatever was logged.
        self.total_loss, self.total_steps = 0.0, 0
        self.start_window()

    def start_window(self) -> None:
        """A fresh window: no loss, no pairs, no time, clock from now."""
        self.window_loss, self.window_batches, self.window_pairs = 0.0, 0, 0
        self.window_seconds = 0.0
        self.restart_clock()

    def pause(self) -> None:
        """Banks the window's time so far (before an evaluation); :meth:`restart_clock` goes on from there."""
        self.window_seconds += time.perf_counter() - self.window_start

    def restart_clock(self) -> None:
        """Restarts the window's clock, so time since the last :meth:`pause` (evaluating) does not count."""
        self.window_start = time.perf_counter()

    def _window_elapsed(self) -> float:
        return self.window_seconds + time.perf_counter() - self.window_start

    def add(self, pairs: int, loss: float) -> None:
        self.total_loss += loss
        self.total_steps += 1
        self.pairs += pairs
        self.window_pairs += pairs
        self.window_loss += loss
        self.window_batches += 1

    def take(self, *, lr: float) -> dict[str, float]:
        """The window's mean loss, the learning rate and pairs/s; then starts a fresh window."""
        elapsed = self._window_elapsed()
        figures = {"loss": self.window_loss / self.window_batches, "lr": lr,
                   "pairs_per_second": self.window_pairs / elapsed if elapsed > 0 else 0.0}
        self.start_window()
        return figures

    def elapsed(self) -> float:
        return time.perf_counter() - self.started + self.earlier_seconds

    def state_dict(self) -> dict[str, Any]:
        """Pairs seen, the open window's sums and the time so far, for a checkpoint."""
        return {"pairs": self.pairs, "window_loss": self.window_loss, "window_batches": self.window_batches,
                "window_pairs": self.window_pairs, "window_seconds": self._window_elapsed(), "elapsed": self.elapsed(),
                "total_loss": self.total_loss, "total_steps": self.total_steps}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continues a saved meter: its time counts on from the saved elapsed time, starting now."""
        self.pairs, self.window_loss = state["pairs"], state["window_loss"]
        self.window_batches, self.window_pairs = state["window_batches"], state["window_pairs"]
        self.window_seconds = state.get("window_seconds", 0.0)  # absent from checkpoints before it was kept
        self.total_loss, self.total_steps = state.get("total_loss", 0.0), state.get("total_steps", 0)
        self.started, self.earlier_seconds = time.perf_counter(), state["elapsed"]
        self.restart_clock()
