"""The Trainer adapter's callbacks: what of Hugging Face's callback list sentsim's loop can honour.

Why a list at all: scripts written for sentence-transformers add ``EarlyStoppingCallback`` and take out the
progress bar (``trainer.remove_callback(ProgressCallback)``), and expect ``pop_callback`` to hand back what it
took. sentsim's loop calls no callbacks, so only those whose effect it has are kept: an
``EarlyStoppingCallback`` becomes the loop's patience, and the progress and printer callbacks that Hugging
Face installs by default say whether the loop shows progress. Any other callback is refused by name.
"""

from __future__ import annotations

from typing import Any

from sentsim.errors import ConfigError

__all__ = ["TrainerCallbacks"]


def _kinds() -> tuple[type, type, type]:
    from transformers import EarlyStoppingCallback, PrinterCallback, ProgressCallback

    return EarlyStoppingCallback, ProgressCallback, PrinterCallback


class TrainerCallbacks:
    """The callbacks a Trainer holds, as Hugging Face's ``CallbackHandler`` adds, pops and removes them."""

    def __init__(self, *, disable_tqdm: bool) -> None:
        _, progress, printer = _kinds()
        # Hugging Face's defaults: a progress bar, or with disable_tqdm a printer of the logs
        self.callbacks: list[Any] = [printer() if disable_tqdm else progress()]

    @property
    def patience(self) -> int | None:
        """Evaluations without a gain before the run stops (the EarlyStoppingCallback's), or None."""
        stopping = _kinds()[0]
        return next((callback.early_stopping_patience for callback in self.callbacks
                     if isinstance(callback, stopping)), None)

    @property
    def shows_progress(self) -> bool:
        """False once the progress (or printer) callback is taken out: the run then prints nothing."""
        _, progress, printer = _kinds()
        return any(isinstance(callback, progress | printer) for callback in self.callbacks)

    def add(self, callback: Any) -> None:
        """Adds a callback (a class or an instance); one that sentsim's loop cannot honour is refused by name."""
        stopping, progress, printer = _kinds()
        instance = callback() if isinstance(callback, type) else callback
        if not isinstance(instance, stopping | progress | printer):
            raise ConfigError(f"SentenceTransformerTrainer: sentsim does not run Trainer callbacks "
                              f"({type(instance).__name__}); EarlyStoppingCallback is supported")
        if isinstance(instance, stopping) and instance.early_stopping_threshold:
            raise ConfigError(f"EarlyStoppingCallback: early_stopping_threshold={instance.early_stopping_threshold} "
                              "is not supported: sentsim counts every evaluation that does not beat the best")
        self.callbacks.append(instance)

    def pop(self, callback: Any) -> Any:
        """Takes out and returns the first callback of that class, or that instance; None when there is none."""
        for held in self.callbacks:
            if isinstance(held, callback) if isinstance(callback, type) else held == callback:
                self.callbacks.remove(held)
                return held
        return None

    def remove(self, callback: Any) -> None:
        """As :meth:`pop`; an instance that is not held is a ``ValueError``, as in Hugging Face's."""
        if self.pop(callback) is None and not isinstance(callback, type):
            raise ValueError(f"{callback!r} is not among this trainer's callbacks")
